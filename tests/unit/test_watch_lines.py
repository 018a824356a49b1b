"""The linear watch-line splitter yields exactly what the client's does, for any chunking."""

from __future__ import annotations

import itertools
import time
from typing import Any

import kubernetes.watch.watch as client_watch
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.kube.watch_lines import iter_resp_lines

CLIENT = client_watch.iter_resp_lines
if CLIENT is iter_resp_lines:  # installed by an earlier import: find the original
    import importlib

    CLIENT = importlib.reload(client_watch).iter_resp_lines
    from controller.adapters.kube import watch_lines

    watch_lines.install()


class Resp:
    def __init__(self, chunks: list[Any]) -> None:
        self.chunks = chunks

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        return iter(self.chunks)


@given(
    text=st.lists(st.sampled_from(["a", "é", "\n", '{"x":1}', "\n\n", "\xff"]), max_size=40),
    cuts=st.lists(st.integers(0, 200), max_size=8),
)
def test_same_lines_as_the_client_for_any_chunking(text: list[str], cuts: list[int]) -> None:
    data = "".join(text).encode("utf-8", errors="surrogateescape")
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert list(iter_resp_lines(Resp(chunks))) == list(CLIENT(Resp(chunks)))


def test_a_burst_of_events_in_one_chunk_is_split_in_linear_time() -> None:
    chunk = b'{"type":"MODIFIED","object":{"metadata":{"name":"x"}}}\n' * 200_000
    started = time.perf_counter()
    assert sum(1 for _ in iter_resp_lines(Resp([chunk]))) == 200_000
    assert time.perf_counter() - started < 5  # the client's copy-per-line takes minutes


def test_the_stream_is_read_in_bounded_pieces_not_whole_chunks() -> None:
    asked: list[Any] = []

    class Recording(Resp):
        def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
            asked.append(amt)
            return super().stream(amt, decode_content)

    event = b'{"type":"MODIFIED","object":{"metadata":{"name":"x"}}}\n'
    pieces = [event[i : i + 7] for i in range(0, len(event) * 3, 7)]  # lines across pieces
    assert (
        list(iter_resp_lines(Recording([b"".join([event] * 3)[: 7 * 100]])))
        == [event[:-1].decode()] * 3
    )
    assert list(iter_resp_lines(Recording(pieces))) == list(CLIENT(Resp(pieces)))
    assert asked and all(isinstance(a, int) and 0 < a <= 1 << 20 for a in asked)
