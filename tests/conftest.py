"""Loaded before any test module: the in-process gRPC servers (engine, servicer harness)
run on the same grpcio I/O layer as a spawned frontend (frontend/grpc/iomgr.py), which
must be chosen before anything imports grpc."""
from tritond.frontend.grpc.iomgr import prefer_iomgr

prefer_iomgr()
