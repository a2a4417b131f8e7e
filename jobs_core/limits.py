"""Every input limit and pattern, in one place. Validation (``validation.py``, ``handlers.py``,
``notify_targets.py``, ``ids.py``, ``labels.py``), the OpenAPI document (``jobs_api``) and the
HTTP layer read them from here; ``tests/unit/test_limits.py`` proves that each pattern the
document shows accepts and refuses the same strings as validation does.

The patterns use only syntax that Python's ``re`` and ECMA-262 (JSON Schema) read alike:
``[0-9]``, not ``\\d`` (which in Python also matches other scripts' digits).
"""

from __future__ import annotations

SECONDS_PER_DAY = 86_400

HANDLER_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
MAX_IDEMPOTENCY_KEY_CHARS = 200
IDEMPOTENCY_KEY_PATTERN = rf"^[!-~]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}$"  # printable ASCII, no space
# a storage queue name: 3-63 lowercase letters, digits and single hyphens, no hyphen at the ends
QUEUE_NAME_PATTERN = r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"
# j<bucket: yyyymmddThhmm>-s<slot>-<blob index>-<16 hex>; the bucket must be a real UTC minute
JOB_ID_PATTERN = (r"^j([0-9]{4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])T"
                  r"(?:[01][0-9]|2[0-3])[0-5][0-9])-s([0-9]{3})-([0-9]{4})-([0-9a-f]{16})$")

MAX_RETRY_DELAY_SECONDS = SECONDS_PER_DAY  # retry.base_delay and retry.max_delay
MAX_TIMEOUT_SECONDS = 3600  # timeout_seconds of one attempt
MAX_LIST_LIMIT = 500  # a page of GET /api/jobs and GET /api/shards
MAX_CANCEL_REASON_CHARS = 500  # DELETE /api/jobs/{id}?reason=, kept in the log
