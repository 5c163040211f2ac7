import asyncio
import threading
import time

import numpy as np
import pytest

from tiffin.runtime.batcher import CLIENT_GONE, Batcher, ClientGone, Overloaded


def _double(batch: np.ndarray) -> np.ndarray:
    time.sleep(0.01)  # a model that takes a while, so requests pile up behind it
    return batch * 2


def test_concurrent_requests_share_batches_and_get_their_own_rows():
    batcher = Batcher(_double, max_batch=16)

    async def run():
        return await asyncio.gather(*(batcher.submit(np.array([i])) for i in range(64)))

    results = asyncio.run(run())
    batcher.close()
    assert [int(out[0]) for out, _ in results] == [2 * i for i in range(64)]
    sizes = [size for _, size in results]
    assert max(sizes) > 1 and max(sizes) <= 16
    assert batcher.items == 64 and batcher.batches < 64


def test_lone_request_is_not_held_back():
    batcher = Batcher(lambda b: b, max_batch=64)

    async def run():
        start = time.perf_counter()
        out, size = await batcher.submit(np.zeros(1))
        return time.perf_counter() - start, size

    elapsed, size = asyncio.run(run())
    batcher.close()
    assert size == 1 and elapsed < 0.05


def test_full_queue_refuses_with_retry_after():
    gate = threading.Event()
    batcher = Batcher(lambda b: (gate.wait(5), b)[1], max_batch=1, max_queue=4)

    async def run():
        tasks = [asyncio.ensure_future(batcher.submit(np.zeros(1)))]
        await asyncio.sleep(0.05)  # the model thread holds the first ...
        tasks += [asyncio.ensure_future(batcher.submit(np.zeros(1))) for _ in range(4)]
        await asyncio.sleep(0.05)  # ... and four more fill the queue
        with pytest.raises(Overloaded) as err:
            await batcher.submit(np.zeros(1))
        gate.set()
        await asyncio.gather(*tasks)
        return err.value

    err = asyncio.run(run())
    batcher.close()
    assert err.retry_after >= 1 and "queued" in str(err)


def test_requests_past_their_deadline_are_refused_not_run():
    gate = threading.Event()
    batcher = Batcher(lambda b: (gate.wait(5), b)[1], max_batch=1, deadline_s=0.05)

    async def run():
        first = asyncio.ensure_future(batcher.submit(np.zeros(1)))
        await asyncio.sleep(0.02)
        late = asyncio.ensure_future(batcher.submit(np.ones(1)))
        await asyncio.sleep(0.1)
        gate.set()
        await first
        with pytest.raises(Overloaded, match="deadline"):
            await late

    asyncio.run(run())
    batcher.close()
    assert batcher.items == 1


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return batch

    counted = []
    batcher = Batcher(flaky, max_batch=1, on_batch=lambda size, seconds, wait: counted.append(size))

    async def run():
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(np.zeros(1))
        return await batcher.submit(np.ones(1))

    out, _ = asyncio.run(run())
    batcher.close()
    assert out[0] == 1
    assert counted == [1]  # only the batch that succeeded is counted


def test_model_threads_run_batches_side_by_side():
    active, most = 0, 0
    lock = threading.Lock()

    def slow(batch: np.ndarray) -> np.ndarray:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return batch

    batcher = Batcher(slow, max_batch=4, threads=2)

    async def run():
        return await asyncio.gather(*(batcher.submit(np.array([i])) for i in range(32)))

    results = asyncio.run(run())
    batcher.close()
    assert [int(out[0]) for out, _ in results] == list(range(32))
    assert most == 2 and batcher.items == 32


def test_a_batch_drawn_from_two_event_loops_answers_each_on_its_own():
    started = threading.Event()
    batcher = Batcher(lambda b: (started.wait(5), b * 2)[1], max_batch=8, max_wait_ms=200)
    results: dict[int, list] = {}

    def client(offset: int) -> None:
        async def run():
            return await asyncio.gather(*(batcher.submit(np.array([offset + i])) for i in range(3)))

        results[offset] = asyncio.run(run())

    clients = [threading.Thread(target=client, args=(k,)) for k in (0, 100)]
    for c in clients:
        c.start()
    time.sleep(0.05)  # both loops have queued inside the 200 ms window: one batch of 6
    started.set()
    for c in clients:
        c.join(5)
    batcher.close()
    assert [int(out[0]) for out, _ in results[0]] == [0, 2, 4]
    assert [int(out[0]) for out, _ in results[100]] == [200, 202, 204]
    assert {size for k in results for _, size in results[k]} == {6}


def test_a_failing_metrics_hook_does_not_cost_the_batch_its_answers():
    def broken(size, seconds, wait):
        raise ValueError("metrics backend gone")

    batcher = Batcher(lambda b: b, max_batch=4, on_batch=broken)

    async def run():
        return [await asyncio.wait_for(batcher.submit(np.array([i])), 5) for i in range(3)]

    results = asyncio.run(run())
    batcher.close()
    assert [int(out[0]) for out, _ in results] == [0, 1, 2] and batcher.items == 3


def test_work_the_queue_cannot_finish_in_time_is_refused_on_arrival_not_run_late():
    """With 0.1 s batches of 2 and a 0.5 s deadline, at most ~10 queued requests can start in
    time: the rest are refused at once (and never reach the model), none is answered late."""
    ran = []

    def slow(batch):
        time.sleep(0.1)
        ran.extend(batch.tolist())
        return batch

    batcher = Batcher(slow, max_batch=2, deadline_s=0.5)

    async def run():
        await batcher.submit(np.array([-1.0]))  # one batch first, so the batcher knows its pace
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(batcher.submit(np.array([float(i)])) for i in range(40)), return_exceptions=True)
        return outcomes, time.perf_counter() - start

    outcomes, elapsed = asyncio.run(run())
    batcher.close()
    refused = [o for o in outcomes if isinstance(o, Overloaded)]
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    assert refused and answered and len(refused) + len(answered) == 40
    assert all("would take" in str(o) and "past the 0.5 s deadline" in str(o) and o.retry_after >= 1 for o in refused)
    assert len(ran) == 1 + len(answered)  # a refused request cost the model nothing
    assert elapsed < 0.5 + 0.3  # everything accepted started within its deadline


def test_offered_items_are_answered_on_the_model_thread_beside_awaited_ones():
    seen: list = []
    main = threading.get_ident()

    def model(batch):
        time.sleep(0.01)
        if (batch == -1).any():
            raise ValueError("bad item")
        return batch * 2

    batcher = Batcher(model, max_batch=8, max_queue=4)

    def done(outcome):
        seen.append((outcome if isinstance(outcome, Exception) else float(outcome), threading.get_ident() != main))

    async def run():
        awaited = asyncio.ensure_future(batcher.submit(np.float32(1)))
        assert batcher.offer(np.float32(2), done) and batcher.offer(np.float32(3), done)
        out, _ = await awaited
        assert float(out) == 2.0
        while len(seen) < 2:
            await asyncio.sleep(0.005)
        while batcher.offer(np.float32(5), done):  # past the queue bound an offer is refused
            pass
        await asyncio.sleep(0.1)
        assert batcher.offer(np.float32(-1), done)
        while not any(isinstance(o, ValueError) for o, _ in seen):
            await asyncio.sleep(0.005)

    asyncio.run(run())
    batcher.close()
    assert seen[:2] == [(4.0, True), (6.0, True)]  # answered off the event loop's thread
    assert all(on_thread for _, on_thread in seen)


def test_a_queued_request_whose_client_leaves_is_dropped_before_the_model_runs_it():
    """Three requests queue behind a 0.2 s batch, each watching its own client; two clients
    leave: theirs fail at once with ClientGone and never reach the model, the third is answered
    and its watch ends with it. A request queued behind no long wait is not watched at all."""
    ran: list = []

    def slow(batch):
        ran.extend(batch.tolist())
        time.sleep(0.2)
        return batch

    dropped: list[int] = []
    batcher = Batcher(slow, max_batch=1, on_drop=dropped.append)
    watched: list[str] = []

    async def run():
        await batcher.submit(np.array([-1.0]))  # sets the pace: 0.2 s a batch
        left = {i: asyncio.Event() for i in (1, 2, 3)}

        async def request(i: int):
            async def gone() -> bool:
                watched.append(f"{i} watched")
                try:
                    await left[i].wait()
                except asyncio.CancelledError:
                    watched.append(f"{i} unwatched")
                    raise
                return True

            CLIENT_GONE.set(gone)  # this task's context only, as a request's in a server
            return await batcher.submit(np.array([float(i)]))

        first = asyncio.ensure_future(request(0))  # an empty queue ahead: run at once, not watched
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(request(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0.02)
        left[1].set()
        left[2].set()
        start = time.perf_counter()
        gone = await asyncio.gather(queued[0], queued[1], return_exceptions=True)
        assert time.perf_counter() - start < 0.1  # told at once, not when their batch would have come
        assert all(isinstance(g, ClientGone) for g in gone), gone
        (out, _), (kept, _) = await first, await queued[2]
        assert float(out[0]) == 0.0 and float(kept[0]) == 3.0

    asyncio.run(run())
    batcher.close()
    assert ran == [[-1.0], [0.0], [3.0]]  # the two that left cost the model nothing
    assert sum(dropped) == 2  # counted once each, where they were dropped
    assert "0 watched" not in watched and {"1 watched", "2 watched", "3 watched", "3 unwatched"} <= set(watched)


def test_a_client_that_leaves_once_its_batch_runs_still_gets_the_batch_it_is_in():
    """The watch ends after the model thread took the request: it runs and is answered as one
    of its batch (counted once, as answered), not failed beside it nor counted as dropped."""
    ran: list = []

    def slow(batch):
        ran.append(float(batch[0][0]))
        time.sleep(0.2)
        return batch

    dropped: list[int] = []
    batcher = Batcher(slow, max_batch=4, on_drop=dropped.append)

    async def run():
        await batcher.submit(np.array([-1.0]))  # sets the pace: 0.2 s a batch
        left = asyncio.Event()

        async def gone() -> bool:
            await left.wait()
            return True

        CLIENT_GONE.set(gone)
        first = asyncio.ensure_future(batcher.submit(np.array([1.0])))
        await asyncio.sleep(0.02)
        queued = asyncio.ensure_future(batcher.submit(np.array([2.0])))  # behind a running 0.2 s batch: watched
        while len(ran) < 3:  # until its batch runs
            await asyncio.sleep(0.01)
        left.set()  # its client leaves while its batch runs
        return await first, await queued

    (one, _), (two, size) = asyncio.run(run())
    batcher.close()
    assert float(one[0]) == 1.0 and float(two[0]) == 2.0 and size == 1
    assert ran == [-1.0, 1.0, 2.0] and dropped == []
