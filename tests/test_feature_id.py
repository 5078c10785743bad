"""Feature ids (``L{layer}:{kind}{index}``, architecture.md): one module writes and reads them."""

import pytest

from interp_lab.errors import UsageError
from interp_lab.schemas.feature_id import (
    KINDS,
    FeatureId,
    format_id,
    kind_of,
    layer_of,
    parse_feature_id,
    parse_id,
    sort_key,
)


def test_format_and_parse_are_inverse_for_every_kind():
    for kind in KINDS:
        fid = format_id(12, kind, 1043)
        assert fid == f"L12:{kind}1043"
        assert parse_id(fid) == FeatureId(12, kind, 1043) == parse_feature_id(f"  {fid} ")
        assert kind_of(fid) == kind and layer_of(fid) == 12
    assert format_id(None, "F", 7) == "F7" and parse_id("F7") is None and layer_of("F7") is None


def test_control_directions_have_a_layer_but_are_not_editable_ids():
    assert format_id(3, "rdir", 4) == "L3:rdir4" and kind_of("L3:rdir4") == "rdir"
    tagged = format_id(3, "mdir", "ab12_4")
    assert tagged == "L3:mdirab12_4" and layer_of(tagged) == 3 and parse_id(tagged) is None
    for bad in ("L3:rdir4", "L3:X5", "L3:N", "3:N5", "gemma-2b/12-res/1234"):
        with pytest.raises(UsageError, match=r"is not L<layer>:<N\|R\|D\|F><index>"):
            parse_feature_id(bad)


def test_sort_key_orders_layers_then_kinds_then_indices_numerically():
    ids = ["L10:N2", "L2:R10", "imported-7", "L2:N10", "L2:N9", "F3", "L2:D0"]
    assert sorted(ids, key=sort_key) == ["L2:D0", "L2:N9", "L2:N10", "L2:R10", "L10:N2", "F3", "imported-7"]
