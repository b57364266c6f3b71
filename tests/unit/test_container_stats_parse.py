from __future__ import annotations

import os

from dockyard.engine.container_stats import parse_blkio, parse_flat_keyed, parse_net_dev, parse_proc_stat_cpu

NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1450      13    1    2    0     0          0         0      586       7    3    4    0     0       0          0
"""


def test_parse_net_dev() -> None:
    assert parse_net_dev(NET_DEV) == {"eth0": {
        "rx_bytes": 1450, "rx_packets": 13, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 586, "tx_packets": 7, "tx_errors": 3, "tx_dropped": 4}}


def test_parse_blkio_skips_totals() -> None:
    text = "8:0 Read 4096\n8:0 Write 0\n8:0 Total 4096\nTotal 4096\n"
    assert parse_blkio(text) == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 0},
        {"major": 8, "minor": 0, "op": "Total", "value": 4096},
    ]


def test_parse_flat_keyed_and_proc_stat() -> None:
    assert parse_flat_keyed("cache 4096\nrss 8192\nbad\n") == {"cache": 4096, "rss": 8192}
    ticks = os.sysconf("SC_CLK_TCK")
    text = "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1 1 1 1\n"
    assert parse_proc_stat_cpu(text) == 28 * 1_000_000_000 // ticks
