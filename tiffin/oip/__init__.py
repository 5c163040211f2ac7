"""The KServe v2 Open Inference Protocol (OIP): tensors, the served-model table, and
the REST and gRPC front ends that share them."""
