"""What each control costs the rules, in memory: `python -m bench.controls_cost`.

Spends of 1 by 200 players, one a second, each player's wallet funded once: the book's
work per command (ledger.Book.execute) with no rule, each rule alone, all three, and
with a frozen player in the book. The spend limit's cost grows with the player's debits
in the window (here 100 each, a heavy player); the lifetime's with the number of lots
(here one each). Best of five runs, so a loaded machine shows its quietest moment.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from ledger import AssetRules, Book, Frozen, Spend, TopUp

START = datetime(2026, 12, 1, tzinfo=UTC)
BIG = 2**52
CASES: list[tuple[str, AssetRules | None, bool]] = [
    ("no rule", None, False),
    ("max_balance", AssetRules(max_balance=BIG), False),
    ("spend_limit_24h (100 debits in window)", AssetRules(spend_limit_24h=BIG), False),
    ("credit_lifetime (1 lot)", AssetRules(credit_lifetime=30 * 86400), False),
    ("all three", AssetRules(BIG, BIG, 30 * 86400), False),
    ("no rule, a frozen player in the book", None, True),
]


def per_spend(rules: AssetRules | None, frozen: bool, n: int = 20_000, users: int = 200) -> float:
    book = Book(rules={"G": rules} if rules else {})
    if frozen:
        book.frozen = {"someone-else": Frozen("review", START)}
    for u in range(users):
        book.execute(f"t{u}", TopUp(f"u{u}", "G", 10**9), START)
    started = time.perf_counter()
    for i in range(n):
        book.execute(f"s{i}", Spend(f"u{i % users}", "G", 1), START + timedelta(seconds=i))
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    base = None
    for name, rules, frozen in CASES:
        best = min(per_spend(rules, frozen) for _ in range(5))
        base = base or best
        print(f"{name:40s} {best:6.1f} us/spend  {best / base:4.2f}x")


if __name__ == "__main__":
    main()
