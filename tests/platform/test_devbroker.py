"""The development stack's S3 server (SeaweedFS, for the broker's s3 engine) leaves no socket
files behind in /tmp when the stack stops."""

from __future__ import annotations

import os

from tools.devbroker import free_port, start_object_store
from tools.devstack import Stack


def test_a_stopped_stack_leaves_no_seaweedfs_socket(tmp_path):
    stack = Stack(root=tmp_path, broker_storage="s3", s3_port=free_port())
    stack.procs["s3"] = s3 = start_object_store(stack.s3_port, tmp_path / "broker")
    # Where weed puts each of its servers' sockets unless told otherwise, on this server's ports
    # (other stacks may run on this machine meanwhile, and their sockets may be there).
    ports = dict(arg.lstrip("-").split("=", 1) for arg in s3.args[2:] if "=" in arg)
    servers = ("master", "volume", "filer", "s3")
    defaults = ({f"/tmp/seaweedfs-{s}-{ports[f'{s}.port']}.sock" for s in servers}
                | {f"/tmp/seaweedfs-{s}-grpc-{ports[f'{s}.port.grpc']}.sock" for s in servers})

    def in_tmp() -> set[str]:
        return {p for p in defaults if os.path.exists(p)}

    try:
        assert {p.name for p in (tmp_path / "broker").glob("*.sock")} == {"filer.sock", "s3.sock"}
        assert in_tmp() and all("-grpc-" in p for p in in_tmp())  # no flag moves the gRPC ones
    finally:
        stack.stop()
    assert not in_tmp()
    assert not list((tmp_path / "broker").glob("*.sock"))
