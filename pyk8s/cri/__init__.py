"""The container runtime seam: CRI `runtime.v1` and what sits behind it.

- `runtime`: the `Runtime` protocol the kubelet codes against, its values and errors;
- `remote`: `RemoteRuntime`, CRI over gRPC on a unix socket (containerd);
- `fake`: `FakeRuntime`, the in-memory twin for simulated nodes and unit tests;
- `containerd`: containerd's config and process; `cni`: the pod network config and
  the blackhole routes of the network-safety rule;
- `api.proto` (+ generated `api_pb2*.py`, scripts/gen-cri.sh): the CRI subset.

The only package that imports gRPC. Importing this package imports neither gRPC
nor protobuf; the submodules do.
"""
