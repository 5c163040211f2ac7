"""tiffin's own client: typed HTTP endpoints over httpx, the OIP over gRPC, sync and async.

from tiffin.client import Client
with Client("http://localhost:3000") as c:            # or Client(grpc="localhost:3001")
    print(c.classify_text("A joy from start to finish."))
"""

from tiffin.client.core import AsyncClient, Client, Prediction

__all__ = ["AsyncClient", "Client", "Prediction"]
