"""Checks shared by the SQLite and Redis tests: the reader against Feast's get_online_features."""

from __future__ import annotations

from pathlib import Path

from aitm.dataset import load_spec
from features.build import source_ids
from features.fields import FeastLayout
from features.online import MissingEntityError, OnlineFeatureReader, reference_columns

LAYOUT = FeastLayout(load_spec())  # the default spec
USER, AD = LAYOUT.entity("user"), LAYOUT.entity("ad")
CONTEXT = {"position": 2, "hour": 8, "channel": "email"}


def _outcome(lookup, user_id: int, ad_ids: list[int]):
    """Either the columns or the missing ids a lookup reported."""
    try:
        return lookup({USER.key: user_id}, ad_ids, CONTEXT)
    except MissingEntityError as exc:
        return exc.missing


def assert_reader_matches_get_online_features(store, repo: Path) -> None:
    """Present and missing users and ads: the same values and the same missing ids."""
    users, ad_ids = source_ids(repo)
    ads = [int(a) for a in ad_ids]
    reader = OnlineFeatureReader(store)

    def reference(user_id, ad_ids, context):
        return reference_columns(store, user_id, ad_ids, context)

    cases = [(int(u), ads[:50]) for u in users[:5]]
    cases += [
        (int(users[5]), [ads[3], ads[1], ads[3]]),  # a repeated ad
        (5, ads[:3]),  # unknown user
        (int(users[6]), [ads[0], 7, ads[1], 3]),  # unknown ads among known ones
        (5, [7]),  # neither
    ]
    seen_missing = 0
    for user_id, ad_ids in cases:
        got = _outcome(reader.columns, user_id, ad_ids)
        assert got == _outcome(reference, user_id, ad_ids), (user_id, ad_ids)
        if set(got) == {USER.key, AD.key}:
            seen_missing += 1
            assert got == {
                USER.key: [user_id] if user_id == 5 else [],
                AD.key: sorted({a for a in ad_ids if a in (3, 7)}),
            }
        else:
            assert got[AD.key] == ad_ids and got[USER.key] == [user_id] * len(ad_ids)
            assert all(v is not None for column in got.values() for v in column)
    assert seen_missing == 3
