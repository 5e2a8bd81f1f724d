"""tritond.tritonjson: JSON text as Triton's writer (rapidjson) spells it."""
import json

from hypothesis import given, strategies as st

from tritond import tritonjson
from tritond.repository.modelconfig import parse_pbtxt, to_json


def test_control_characters_upper_case_hex_and_the_rest_as_they_are():
    text = "k\x1f\x01\x00\x7f\u00e9\u2028\"\\\b\f\n\r\t"
    want = '"k\\u001F\\u0001\\u0000\x7f\u00e9\u2028\\"\\\\\\b\\f\\n\\r\\t"'
    assert tritonjson.dumps(text) == want
    assert tritonjson.encode(text) == want.encode()


def test_an_escaped_backslash_before_u001f_is_text():
    assert tritonjson.dumps("\\u001f") == '"\\\\u001f"'
    assert tritonjson.encode("\\\\u001f\x1f") == b'"\\\\\\\\u001f\\u001F"'
    assert tritonjson.encode({"plain": [1, 2.5]}) == b'{"plain":[1,2.5]}'


@given(st.recursive(st.text(), lambda c: st.lists(c, max_size=3)
                    | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=8))
def test_same_value_as_json_reads_it(value):
    assert json.loads(tritonjson.encode(value)) == value
    assert json.loads(tritonjson.dumps(value)) == value
    assert tritonjson.dumps(value).encode() == tritonjson.encode(value)


def test_served_config_json_is_tritons_text():
    """Triton 2.51's /config answer for this parameter (an oracle run): upper-case hex,
    DEL and non-ASCII unescaped (Python's json would write \\u007f and \\u00e9)."""
    cfg = parse_pbtxt('name: "esc" parameters { key: "k\\037" value { string_value: '
                      '"a\\037b\\001c\\x7f\\303\\251" } }', "config.pbtxt")
    assert '"parameters":{"k\\u001F":{"string_value":"a\\u001Fb\\u0001c\x7f\u00e9"}}' \
        in to_json(cfg)
