"""Runs the Autobahn fuzzingclient cases (kosoku) against a msgbus WebSocket echo endpoint and
prints the count of each outcome and every case that is not OK; exits 1 on any FAILED case."""
import asyncio
import collections
import sys

import kosoku


async def main(url):
    try:
        results = await kosoku.run_fuzzingclient(url, exclude_cases=["12.*", "13.*"], concurrency=1)
    except kosoku.FailureError as e:
        results = e.results
    counts = collections.Counter(str(r.behavior).split(".")[-1] for r in results)
    print(len(results), "cases:", dict(counts))
    for r in results:
        name = str(r.behavior).split(".")[-1]
        if name != "OK":
            print(f"  {r.case_id}: {name} (close: {str(r.behavior_close).split('.')[-1]})")
    return 1 if counts.get("FAILED") else 0


sys.exit(asyncio.run(main(sys.argv[1])))
