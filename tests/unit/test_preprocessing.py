import io
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tiffin.families import bikeshare, fashion, textcnn
from tiffin.wire import images
from train import datasets


@pytest.fixture(scope="module")
def fashion_data():
    return datasets.fashion_mnist()


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_fashion_png_round_trip_is_exact(fashion_data):
    pixels = fashion_data.x_test[0]
    assert np.array_equal(images.decode_image(images.encode_png(pixels)), pixels)


def test_a_28x28_upload_in_photo_style_is_inverted(fashion_data):
    # the model-sized image skips padding and resizing; the inversion rule still applies
    pixels = fashion_data.x_test[2]
    assert np.array_equal(images.decode_image(images.encode_png(255 - pixels)), pixels)


def test_rotated_upload_is_turned_upright():
    upright = np.zeros((28, 28), dtype=np.uint8)
    upright[2:12, 10:18] = 255  # a bright block near the top
    exif = Image.Exif()
    exif[0x0112] = 3  # EXIF orientation: stored upside down
    stored = Image.fromarray(upright[::-1, ::-1].copy())
    buf = io.BytesIO()
    stored.save(buf, format="PNG", exif=exif.tobytes())
    assert np.array_equal(images.decode_image(buf.getvalue()), upright)


@pytest.mark.parametrize("side", [28, 300])
def test_uploads_decode_as_decode_image_wherever_it_runs(fashion_data, side):
    import asyncio

    from tiffin.runtime import uploads

    data = _encode(Image.fromarray(fashion_data.x_test[5]).resize((side, side)), "PNG")
    assert np.array_equal(asyncio.run(uploads.decode(data)), images.decode_image(data))
    with pytest.raises(images.InvalidImage, match="not a PNG or JPEG"):
        asyncio.run(uploads.decode(b"plain text"))


def test_photo_style_upload_is_inverted_resized_and_padded(fashion_data):
    pixels = fashion_data.x_test[2]  # a trouser: light garment on black
    # As a photo would show it: dark garment on white, colour, larger, not square, JPEG.
    photo = Image.fromarray(255 - pixels).resize((112, 112)).convert("RGB")
    canvas = Image.new("RGB", (168, 112), (255, 255, 255))
    canvas.paste(photo, (28, 0))
    decoded = images.decode_image(_encode(canvas, "JPEG"))
    assert decoded.shape == (28, 28) and decoded.dtype == np.uint8
    # padded to a square, so the garment is squeezed into the middle two thirds
    assert decoded[:, :4].max() < 40 and decoded[:, -4:].max() < 40
    assert decoded[:, 10:18].mean() > 60


def test_grey_and_rgba_png_are_accepted(fashion_data):
    rgba = Image.fromarray(fashion_data.x_test[0]).convert("RGBA")
    assert images.decode_image(_encode(rgba, "PNG")).shape == (28, 28)


@pytest.mark.parametrize(
    "payload, message",
    [(b"", "empty"), (b"hello, not an image", "not a PNG or JPEG"), (b"GIF89a" + b"\0" * 64, "not a PNG or JPEG")],
)
def test_bad_uploads_say_what_is_wrong(payload, message):
    with pytest.raises(images.InvalidImage, match=message):
        images.decode_image(payload)


def test_truncated_png_is_refused(fashion_data):
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)), "PNG")
    with pytest.raises(images.InvalidImage, match="truncated or corrupt"):
        images.decode_image(data[: len(data) // 2])


def test_other_formats_are_refused():
    with pytest.raises(images.InvalidImage, match="unsupported image format BMP"):
        images.decode_image(_encode(Image.new("L", (8, 8)), "BMP"))


def test_huge_dimensions_are_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(images.InvalidImage, match="at most 100 pixels"):
        images.decode_image(_encode(Image.new("L", (20, 20)), "PNG"))


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_hostile_shapes_cost_bounded_work():
    """A 39 KB PNG of 50000x800 once became a 50000x50000 square (+2.4 GB); a 40000000x1 one
    asked for petabytes. Past 16384 on a side: refused before decoding; below, scaled down
    before it is padded."""
    for shape in ((800, 50_000), (40_000_000, 1), (1, 40_000_000)):
        with pytest.raises(images.InvalidImage, match="16384 pixels on a side"):
            images.decode_image(_png(np.zeros(shape, np.uint8)))
    start = time.perf_counter()
    strip = np.full((500, 16_000), 255, np.uint8)
    strip[:, 7_000:9_000] = 0  # a dark band in a light photo-style strip
    out = images.decode_image(_png(strip))
    assert out.shape == (28, 28) and time.perf_counter() - start < 2.0
    assert out[0].max() == 0 and out[13].max() == 255  # padding in the border colour, inverted with it; the band in row 13


def test_a_large_jpeg_decodes_at_reduced_scale_with_the_same_answer():
    rng = np.random.default_rng(0)
    photo = np.full((3000, 3000), 230, np.uint8)
    photo[600:2400, 900:2100] = rng.integers(0, 80, (1800, 1200), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=92)
    small = np.asarray(Image.fromarray(photo).resize((28, 28), Image.Resampling.BILINEAR, reducing_gap=3.0))
    out = images.decode_image(buf.getvalue())
    assert np.abs(out.astype(int) - (255 - small.astype(int))).mean() < 6  # inverted photo, same picture


def test_a_phone_jpeg_with_more_pictures_in_it_is_accepted():
    """MPO: a JPEG followed by more pictures (depth maps, previews), as many phones write."""
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    picture.save(buf, format="MPO", save_all=True, append_images=[picture])
    assert images.decode_image(buf.getvalue()).shape == (28, 28)


def test_normalise_checks_shape_and_standardises(fashion_data):
    x = fashion.normalise(fashion_data.x_train[:512])
    assert x.shape == (512, 1, 28, 28) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1
    with pytest.raises(ValueError, match=r"expected \(N, 28, 28\)"):
        fashion.normalise(np.zeros((2, 32, 32), dtype=np.uint8))


def test_tokenizer_and_vocabulary_round_trip():
    assert textcnn.tokenize("It's GREAT, isn't it?!") == ["it's", "great", "isn't", "it", "?", "!"]
    vocab = textcnn.Vocabulary.build(["good film", "good plot", "bad film"], min_freq=2, max_len=8)
    assert vocab.itos == ["<pad>", "<unk>", "good", "film"]
    ids = vocab.encode(["good film", "a bad good " * 10])
    assert ids.shape == (2, 8)
    assert ids[0].tolist() == [2, 3, 0, 0, 0, 0, 0, 0]
    assert ids[1, :3].tolist() == [1, 1, 2]
    again = textcnn.Vocabulary.from_json(vocab.to_json())
    assert torch.equal(again.encode(["good film"]), vocab.encode(["good film"]))


def test_feature_encoder_round_trip_and_errors():
    split = datasets.bikeshare()
    enc = bikeshare.FeatureEncoder.fit(split.x_train)
    x = enc.encode(split.x_test.head(5))
    assert x.shape == (5, enc.width) and np.isfinite(x).all()
    again = bikeshare.FeatureEncoder.from_json(enc.to_json())
    assert np.array_equal(again.encode(split.x_test.head(5)), x)
    row = {k: [v] for k, v in split.x_test.iloc[0].to_dict().items()}
    row["mnth"] = ["Smarch"]
    with pytest.raises(ValueError, match="mnth='Smarch'"):
        enc.encode(row)


def test_splits_are_fixed_and_disjoint():
    a, b = datasets.rotten_tomatoes(), datasets.rotten_tomatoes()
    assert a.x_test[:20] == b.x_test[:20]
    assert not set(a.x_train) & set(a.x_test)
    assert "plot" not in a.name and set(np.unique(a.y_train)) == {0, 1}
    bikes = datasets.bikeshare()
    assert "casual" in bikes.x_train.columns  # present in the data ...
    assert not {"casual", "registered", "bikers"} & set(bikeshare.FEATURES)  # ... never a model input


def test_textcnn_answer_does_not_depend_on_batch_mates():
    torch.manual_seed(0)
    vocab = textcnn.Vocabulary.build(["a good film with a plot", "bad film"] * 2, min_freq=1)
    net = textcnn.TextCNN(len(vocab), dim=8, filters=4).eval()
    alone = net(vocab.encode(["good film"]))
    with_long_mate = net(vocab.encode(["good film", "a good film with a plot " * 5]))[:1]
    assert torch.allclose(alone, with_long_mate, atol=1e-6)
