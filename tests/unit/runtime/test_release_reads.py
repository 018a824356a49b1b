"""A release reconcile reads the informer's cache unless its own last write is not there."""

from __future__ import annotations

import pytest

from controller.runtime.ports import JsonDict, NotFoundError
from controller.runtime.release_reads import ReleaseReads


def release(rv: str, phase: str = "Progressing") -> JsonDict:
    return {
        "metadata": {"namespace": "ns", "name": "r", "resourceVersion": rv},
        "status": {"phase": phase},
    }


class World:
    def __init__(self) -> None:
        self.cache: JsonDict | None = release("4")
        self.server: JsonDict | None = release("4")
        self.gets = 0

    def cached(self, namespace: str, name: str) -> JsonDict | None:
        return self.cache

    def fetch(self, namespace: str, name: str) -> JsonDict:
        self.gets += 1
        if self.server is None:
            raise NotFoundError(name)
        return self.server


def test_reads_come_from_the_cache_without_a_round_trip() -> None:
    world = World()
    reads = ReleaseReads(world.cached, world.fetch)
    assert reads.read("ns", "r") is world.cache
    assert world.gets == 0


def test_own_write_not_yet_in_the_cache_is_read_from_the_server() -> None:
    world = World()
    reads = ReleaseReads(world.cached, world.fetch)
    world.server = release("5", "RollingBack")
    reads.wrote(world.server)
    assert reads.read("ns", "r")["status"]["phase"] == "RollingBack"  # not the cached 4
    assert world.gets == 1
    world.cache = release("5", "RollingBack")  # the watch event arrived
    assert reads.read("ns", "r") is world.cache
    assert reads.read("ns", "r") is world.cache
    assert world.gets == 1


def test_a_cache_past_the_own_write_is_used_again() -> None:
    world = World()
    reads = ReleaseReads(world.cached, world.fetch)
    reads.wrote(release("5"))
    world.cache = world.server = release("6")  # someone wrote after us; the cache has it
    reads.read("ns", "r")
    assert world.gets == 1  # one GET settles it
    reads.read("ns", "r")
    assert world.gets == 1


def test_not_in_the_cache_yet_reads_the_server_and_missing_raises() -> None:
    world = World()
    reads = ReleaseReads(world.cached, world.fetch)
    world.cache = None
    assert reads.read("ns", "r") is world.server
    world.server = None
    with pytest.raises(NotFoundError):
        reads.read("ns", "r")
