"""``tokend exec --mask``: the stream masker, whatever the chunking, and the masked child."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterable

import pytest

from tokend.ci.masking import Masker, run_masked

SECRET = "ghp_S3cretTokenValue0123"


def feed_all(secrets: Iterable[str], chunks: Iterable[bytes]) -> bytes:
    masker = Masker(secrets)
    out = b"".join(masker.feed(c) for c in chunks)
    return out + masker.flush()


def test_every_split_point_of_a_secret_is_caught() -> None:
    text = f"token={SECRET}; again {SECRET}.".encode()
    expected = b"token=***; again ***."
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert feed_all([SECRET], [text[:i], text[i:j], text[j:]]) == expected, (i, j)


def test_byte_by_byte() -> None:
    text = f"a{SECRET}b{SECRET}{SECRET}c".encode()
    assert feed_all([SECRET], [bytes([b]) for b in text]) == b"a***b******c"


def test_a_secret_prefix_that_goes_nowhere_comes_out_unchanged() -> None:
    text = (SECRET[:10] + "-not-it " + SECRET[:-1]).encode()
    assert feed_all([SECRET], [text[:5], text[5:12], text[12:]]) == text


def test_output_is_not_held_back_needlessly() -> None:
    masker = Masker([SECRET])
    assert masker.feed(b"hello world\n") == b"hello world\n"
    assert masker.feed(b"ends with gh") == b"ends with "  # "gh" may begin the secret
    assert masker.feed(b"x\n") == b"ghx\n"


def test_longest_secret_wins_even_across_chunks() -> None:
    short, long = "abcdef12", "abcdef12XYZ789"
    assert feed_all([short, long], [b"<abcdef12", b"XYZ789>"]) == b"<***>"
    assert feed_all([short, long], [b"<abcdef12", b"XY>"]) == b"<***XY>"


def test_overlapping_secrets_never_leak_a_head() -> None:
    # A held-back tail that starts inside an earlier full match must not split it.
    one, two = "abcd1234", "1234zzzz"
    assert feed_all([one, two], [b"abcd1234z", b"q"]) == b"***zq"
    assert feed_all([one, two], [b"x1234zz", b"zz!"]) == b"x***!"


def test_random_chunking_matches_a_plain_replace() -> None:
    rng = random.Random(7)
    secrets = [SECRET, "AKIA0123456789ABCDEF", "short1"]
    for _ in range(200):
        parts = [rng.choice([*secrets, "x", "y\n", "AKIA", "ghp_", "sho"]) for _ in range(30)]
        text = "".join(parts).encode()
        cuts = sorted(rng.sample(range(len(text) + 1), 5))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        expected = text
        for s in sorted(secrets, key=len, reverse=True):
            expected = expected.replace(s.encode(), b"***")
        assert feed_all(secrets, chunks) == expected


def test_no_secrets_passes_everything_through() -> None:
    assert feed_all([], [b"a", b"b"]) == b"ab"


def python(code: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", code]


def test_run_masked_masks_both_streams_and_returns_the_status(capfd: pytest.CaptureFixture[str]) -> None:
    code = (
        "import os, sys, time\n"
        f"s = {SECRET!r}\n"
        "os.write(1, b'out: ' + s[:7].encode()); time.sleep(0.05); os.write(1, s[7:].encode() + b'\\n')\n"
        "os.write(2, ('err: ' + s + '\\n').encode())\n"
        "sys.exit(7)\n"
    )
    status = run_masked(python(code), dict(os.environ), [SECRET])
    out, err = capfd.readouterr()
    assert status == 7
    assert out == "out: ***\n" and err == "err: ***\n"
    assert SECRET not in out + err
