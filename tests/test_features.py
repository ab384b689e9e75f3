"""Feature kinds set by the schema's tags and the params file; model input names that never clash."""

import numpy as np
import pandas as pd
import pytest

from mlops.errors import StageError
from mlops.stages.features import schema_kinds, unique_names
from mlops.stages.prepare import fit_preprocessor
from mlops.store import model_io

ROWS = 120


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "store_id": rng.integers(1, 6, ROWS) * 1000.5,  # numbers that are codes
            "opened": pd.date_range("2021-01-01", periods=ROWS, freq="D").strftime("%Y-%m-%d"),
            "note": [f"order {i} was {rng.choice(['late', 'fine'])} this week" for i in range(ROWS)],
            "amount": rng.normal(size=ROWS),
            "y": rng.choice(["a", "b"], ROWS),
        }
    )


# As TFDV writes a schema (tfdv.write_schema_text), with a name escaped as text_format escapes it.
WRITTEN = """feature {
  name: "store_id"
  type: FLOAT
  annotation {
    tag: "kind: categorical"
    tag: "owner: sales"
  }
}
feature {
  name: "opened"
  type: BYTES
  annotation {
    tag: "kind:drop"
  }
}
feature {
  name: "caf\\303\\251"
  type: FLOAT
  annotation {
    tag: "kind: numeric"
  }
}
"""
STORE_AND_OPENED = WRITTEN.split('feature {\n  name: "caf')[0]
# As a person writes one: comments, one line, the optional colon before a message, a list of tags.
HANDWRITTEN = """# curated
feature { name: 'note' annotation: { tag: ["reviewed", "kind: bag_of_words"] } }  # counted words
feature <name: "amount" type: FLOAT float_domain { min: -1e9 max: 1e9 }>
sparse_feature { name: "ignored" annotation { tag: "kind: drop" } }
"""


def test_kind_tags_are_read_from_written_and_handwritten_schemas():
    assert schema_kinds(WRITTEN, ["store_id", "opened", "café"]) == {
        "store_id": "categorical",
        "opened": "drop",
        "café": "numeric",
    }
    assert schema_kinds(HANDWRITTEN, ["note", "amount"]) == {"note": "bag_of_words"}
    assert schema_kinds(None, ["x"]) == {} and schema_kinds("", ["x"]) == {}


def test_the_schema_overrides_detection_and_the_params_file_overrides_the_schema():
    train = _table()
    _, detected = fit_preprocessor(train, "y")
    assert {c: detected["features"][c]["kind"] for c in ("store_id", "opened", "note")} == {
        "store_id": "numeric",
        "opened": "datetime",
        "note": "text",
    }
    transform, info = fit_preprocessor(train, "y", schema_text=STORE_AND_OPENED + HANDWRITTEN)
    kinds = {c: d["kind"] for c, d in info["features"].items()}
    assert kinds == {"store_id": "categorical", "opened": "drop", "note": "bag_of_words", "amount": "numeric"}
    assert info["features"]["store_id"]["reason"] == "set in the schema (annotation tag)"
    names = list(transform.get_feature_names_out())
    assert "store_id_1000.5" in names and "note__late" in names and not any(n.startswith("opened") for n in names)

    _, both = fit_preprocessor(train, "y", overrides={"store_id": "numeric"}, schema_text=STORE_AND_OPENED)
    assert both["features"]["store_id"] == {"kind": "numeric", "reason": "set in the params file (features)"}
    assert both["features"]["opened"]["kind"] == "drop"  # the schema still decides what the params file does not


@pytest.mark.parametrize(
    "schema, message",
    [
        # a kind that does not exist
        (
            'feature { name: "store_id" annotation { tag: "kind: ordinal" } }',
            "tag 'kind: ordinal' on feature 'store_id' must name one of numeric, boolean",
        ),
        # a column the data does not have
        (
            'feature { name: "shop" annotation { tag: "kind: drop" } }',
            "sets a kind on 'shop', which is not a feature column",
        ),
        # the target
        ('feature { name: "y" annotation { tag: "kind: categorical" } }', "sets a kind on 'y', the target"),
        # two kinds for one feature
        (
            'feature { name: "note" annotation { tag: "kind: text" tag: "kind: drop" } }',
            "gives feature 'note' 2 kind tags",
        ),
        # not a text proto
        ('feature { name: "note" annotation { tag: "kind: text', "not a readable text proto"),
    ],
)
def test_a_bad_kind_tag_is_one_line(schema, message):
    with pytest.raises(StageError, match=message) as error:
        fit_preprocessor(_table(), "y", schema_text=schema)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "names, expected",
    [
        (["a", "b"], ["a", "b"]),  # nothing to do
        (["a", "a", "a"], ["a", "a__2", "a__3"]),  # the first keeps its name
        (["a", "a__2", "a"], ["a", "a__2", "a__3"]),  # a suffix never takes a name given later
        (["a", "a", "a__2"], ["a", "a__3", "a__2"]),  # ... nor one given later in the list
    ],
)
def test_unique_names(names, expected):
    assert unique_names(names) == expected


def test_bag_of_words_names_never_clash_with_columns_or_each_other():
    train = _table().drop(columns=["opened"])
    train["note__late"] = np.arange(ROWS) / 7  # a column named as a word of note would be
    train["late"] = np.linspace(0, 1, ROWS)
    train["memo"] = train["note"].str.replace("order", "memo")  # shares 'late', 'fine', 'week' with note
    overrides = {"note": "bag_of_words", "memo": "bag_of_words"}
    transform, info = fit_preprocessor(train, "y", overrides=overrides)
    names = list(transform.get_feature_names_out())
    assert len(names) == len(set(names)) == info["output_features"]
    assert names[: names.index("late") + 1] == ["store_id", "amount", "note__late", "late"]  # columns keep theirs
    assert "note__late__2" in names and "memo__late" in names and "note__fine" in names
    again, _ = fit_preprocessor(train, "y", overrides=overrides)
    assert list(again.get_feature_names_out()) == names  # deterministic
    loaded = model_io.loads(model_io.dumps(transform))  # on the trusted list
    assert list(loaded.get_feature_names_out()) == names
    np.testing.assert_array_equal(loaded.transform(train), transform.transform(train))
    counted = transform.transform(train)[:, names.index("note__late__2")]
    np.testing.assert_array_equal(counted, train["note"].str.contains("late").astype(float))


def test_a_sampled_row_counter_is_still_an_identifier():
    """A sample of a 10,000-row split's counter spans the split's rows, not the sample's 1,000."""
    from mlops.stages.features import detect_kind

    sampled = pd.Series(np.random.default_rng(0).choice(10_000, 1_000, replace=False), name="row_id")
    assert detect_kind(sampled)[0] == "numeric"  # a range of 10,000 over 1,000 rows: not a counter of these rows
    assert detect_kind(sampled, split_rows=10_000)[0] == "id"
