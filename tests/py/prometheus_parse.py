"""Parses a Prometheus text exposition with the Prometheus project's own
Python client parser (prometheus_client), as a scraper would.

Run by tests/metrics.rs as
    python tests/py/prometheus_parse.py SCRAPED_FILE
Prints one line per family, `family NAME TYPE`, then one per sample,
`sample NAME {"label": "value"} VALUE` (labels as sorted JSON). A text
the parser refuses exits non-zero with the parser's error.
"""

import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as error:  # the venv is made by `make deps`
    print(f"prometheus_client is not importable ({error}): run `make deps`", file=sys.stderr)
    sys.exit(2)

with open(sys.argv[1], encoding="utf-8") as scraped:
    text = scraped.read()
try:
    families = list(text_string_to_metric_families(text))
except Exception as error:  # the parser's refusal is the finding
    print(f"not the Prometheus text format: {error!r}", file=sys.stderr)
    sys.exit(1)
for family in families:
    print(f"family {family.name} {family.type}")
    for sample in family.samples:
        labels = json.dumps(sample.labels, sort_keys=True)
        print(f"sample {sample.name} {labels} {sample.value!r}")
