"""Run the CLI in this process and record its own peak memory and CPU time in $BENCH_USAGE_FILE."""

import json
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.cli.main import main

if __name__ == "__main__":
    code = main(sys.argv[1:])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(os.environ["BENCH_USAGE_FILE"]).write_text(
        json.dumps(
            {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2)}
        )
    )
    sys.exit(code)
