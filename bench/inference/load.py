"""A bounded asyncio load client (aiohttp), the fallback when ``wrk`` is not installed.

``python bench/inference/load.py URL --body-file F [-H 'Name: value' ...] --concurrency C
--duration S`` keeps C connections busy POSTing the body for S seconds (127.0.0.1 only), then
prints one ``BENCH-RESULT {json}`` line with the same fields as ``post.lua`` (the wrk script):
requests completed, duration, latency percentiles in microseconds, errors. ``run.py`` starts it
as a separate process, so it never shares an interpreter with a server. On a 2-core machine a
Python client costs far more CPU per request than wrk, which lowers every server's numbers; use
wrk for the recorded runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import aiohttp


async def load(
    url: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    duration: float,
    timeout: float,
) -> dict[str, float]:
    latencies: list[int] = []
    errors = {"status": 0, "connect": 0, "read": 0, "timeout": 0}
    statuses: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=client_timeout,
        headers=headers,
        skip_auto_headers=["Accept-Encoding"],
    ) as session:
        start = time.perf_counter_ns()
        stop = start + int(duration * 1e9)

        async def worker() -> None:
            while (began := time.perf_counter_ns()) < stop:
                try:
                    async with session.post(url, data=body) as response:
                        await response.read()
                        ok = 200 <= response.status < 400
                except TimeoutError:
                    errors["timeout"] += 1
                    continue
                except aiohttp.ClientConnectorError:
                    errors["connect"] += 1
                    await asyncio.sleep(0.01)
                    continue
                except aiohttp.ClientError:
                    errors["read"] += 1
                    continue
                if not ok:
                    errors["status"] += 1
                    statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
                latencies.append((time.perf_counter_ns() - began) // 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed_us = (time.perf_counter_ns() - start) // 1000
    latencies.sort()

    def pct(p: float) -> int:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0

    return {
        "requests": len(latencies),
        "duration_us": elapsed_us,
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "max_us": latencies[-1] if latencies else 0,
        "mean_us": sum(latencies) / len(latencies) if latencies else 0.0,
        "status_errors": errors["status"],
        "connect_errors": errors["connect"],
        "read_errors": errors["read"],
        "write_errors": 0,
        "timeouts": errors["timeout"],
        "statuses": statuses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--body-file", required=True)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    options = parser.parse_args()
    host = urlsplit(options.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"only loopback targets are allowed, not {host}")
    headers = {}
    for header in options.header:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    with open(options.body_file, "rb") as body_file:
        body = body_file.read()
    result = asyncio.run(
        load(options.url, body, headers, options.concurrency, options.duration, options.timeout)
    )
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
