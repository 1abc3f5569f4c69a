import pytest

from src.core.errors import DataError
from src.data import preprocess as pp
from tests.fixtures import LABEL_NAMES, write_tweeteval


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("@bob hello @alice", "@user hello @user"),  # TweetEval: mentions become @user
        ("look http://t.co/abc https://x.y now", "look now"),  # tokens starting http are dropped
        ("fish &amp; chips &lt;3", "fish & chips <3"),  # HTML entities unescaped
        ("  tabs\tand\nnew\u2028lines   ", "tabs and new lines"),  # all whitespace collapsed
        ("@ alone", "@ alone"),  # a bare @ is not a mention
        ("Cafe\u0301", "Café"),  # NFC
        ("http://only.link", ""),
    ],
)
def test_normalize_tweet(raw, expected):
    assert pp.normalize_tweet(raw) == expected


def test_normalisation_is_idempotent_on_tweeteval_text():
    once = pp.normalize_tweet("@user @user I'm going too!! did you go? ")
    assert pp.normalize_tweet(once) == once


def test_duplicates_leaks_and_empties_are_dropped_from_train_only():
    splits = {
        "train": pp.Split(
            ["good day", "good  day", "good day", "http://x", "seen in test", "fine", "@a hi"],
            [2, 2, 0, 1, 1, 1, 1],
        ),
        "val": pp.Split(["@b hi", "good day"], [1, 2]),
        "test": pp.Split(["seen in test", "seen in test"], [1, 1]),
    }
    cleaned, dropped = pp.clean_splits(splits)
    assert cleaned["train"].texts == ["fine"]
    assert dropped == {
        "empty_after_normalization": 1,
        "duplicate_in_train": 0,
        "in_val_or_test": 5,
        "duplicates_with_different_label": 0,
    }
    assert len(cleaned["val"]) == 2 and len(cleaned["test"]) == 2  # held-out splits are never thinned


def test_duplicates_inside_train_keep_the_first_and_count_label_conflicts():
    splits = {
        "train": pp.Split(["a b", "a  b", "a b", "c"], [2, 2, 0, 1]),
        "val": pp.Split(["x"], [0]),
        "test": pp.Split(["y"], [0]),
    }
    cleaned, dropped = pp.clean_splits(splits)
    assert cleaned["train"].texts == ["a b", "c"] and cleaned["train"].labels == [2, 1]
    assert dropped["duplicate_in_train"] == 2 and dropped["duplicates_with_different_label"] == 1


def test_stratified_subset_keeps_class_balance_and_is_seeded():
    split = pp.Split([f"t{i}" for i in range(300)], [0] * 60 + [1] * 120 + [2] * 120)
    sub = pp.stratified_subset(split, 100, seed=3)
    assert len(sub) == 100
    assert pp.class_counts(sub, LABEL_NAMES) == {"negative": 20, "neutral": 40, "positive": 40}
    assert sub.texts == pp.stratified_subset(split, 100, seed=3).texts
    assert pp.stratified_subset(split, None, seed=3) is split


def _raw_dir(tmp_path):
    return write_tweeteval(tmp_path / "raw", {s: [("a tweet", 0), ("another", 2)] for s in pp.SPLITS})


def test_reads_tweeteval_layout(tmp_path):
    splits = pp.read_tweeteval(_raw_dir(tmp_path), LABEL_NAMES)
    assert splits["val"].texts == ["a tweet ", "another "] and splits["val"].labels == [0, 2]


def test_line_counts_that_differ_name_both_files(tmp_path):
    raw = _raw_dir(tmp_path)
    (raw / "val_labels.txt").write_text("0\n2\n1\n")
    with pytest.raises(DataError, match=r"val_text.txt has 2 lines but .*val_labels.txt has 3"):
        pp.read_tweeteval(raw, LABEL_NAMES)


@pytest.mark.parametrize("bad", ["3", "-1", "pos", "1.0"])
def test_label_outside_range_names_file_and_line(tmp_path, bad):
    raw = _raw_dir(tmp_path)
    (raw / "test_labels.txt").write_text(f"0\n{bad}\n")
    with pytest.raises(DataError, match=r"test_labels.txt:2: label .* is not one of 0..2"):
        pp.read_tweeteval(raw, LABEL_NAMES)


def test_empty_file_is_named(tmp_path):
    raw = _raw_dir(tmp_path)
    (raw / "train_text.txt").write_text("")
    with pytest.raises(DataError, match=r"train_text.txt: file is empty"):
        pp.read_tweeteval(raw, LABEL_NAMES)


def test_undecodable_bytes_name_file_and_line(tmp_path):
    raw = _raw_dir(tmp_path)
    (raw / "train_text.txt").write_bytes(b"fine\nbad \xff\xfe bytes\n")
    with pytest.raises(DataError, match=r"train_text.txt:2: not valid UTF-8"):
        pp.read_tweeteval(raw, LABEL_NAMES)


def test_missing_file_is_named(tmp_path):
    raw = _raw_dir(tmp_path)
    (raw / "val_text.txt").unlink()
    with pytest.raises(DataError, match=r"val_text.txt: file not found"):
        pp.read_tweeteval(raw, LABEL_NAMES)


def test_mapping_must_agree_with_label_names(tmp_path):
    raw = _raw_dir(tmp_path)
    (raw / "mapping.txt").write_text("0\tnegative\n1\tpositive\n2\tneutral\n")
    with pytest.raises(DataError, match="mapping.txt: labels .* differ from params data.label_names"):
        pp.read_tweeteval(raw, LABEL_NAMES)


CSV_PARAMS = {
    "text_column": "tweet",
    "label_column": "sentiment",
    "split_column": None,
    "val_size": 0.2,
    "test_size": 0.2,
}


def test_csv_with_names_or_ids_and_a_stratified_split(tmp_path):
    rows = [f'"tweet {i}, with comma",{["negative", "1", "positive"][i % 3]}' for i in range(30)]
    path = tmp_path / "own.csv"
    path.write_text("tweet,sentiment\n" + "\n".join(rows) + "\n")
    splits = pp.read_csv_dataset(path, CSV_PARAMS, LABEL_NAMES, seed=0)
    assert {s: len(v) for s, v in splits.items()} == {"train": 18, "val": 6, "test": 6}
    assert sorted(splits["test"].labels) == [0, 0, 1, 1, 2, 2]
    assert all(", with comma" in t for t in splits["train"].texts)


def test_tsv_with_a_split_column(tmp_path):
    path = tmp_path / "own.tsv"
    path.write_text("tweet\tsentiment\tfold\nhi\t2\ttrain\nmeh\t1\tval\nugh\t0\ttest\n")
    splits = pp.read_csv_dataset(path, {**CSV_PARAMS, "split_column": "fold"}, LABEL_NAMES, seed=0)
    assert splits["val"].texts == ["meh"] and splits["test"].labels == [0]


def test_csv_without_the_named_columns_says_which(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("text,label\nhi,2\n")
    with pytest.raises(DataError, match=r"own.csv:1: missing column\(s\) tweet, sentiment \(header has: text, label\)"):
        pp.read_csv_dataset(path, CSV_PARAMS, LABEL_NAMES, seed=0)


def test_csv_bad_label_names_the_line(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("tweet,sentiment\nhi,2\nyo,happy\n")
    with pytest.raises(DataError, match=r"own.csv:3: label 'happy' is not one of 0..2"):
        pp.read_csv_dataset(path, CSV_PARAMS, LABEL_NAMES, seed=0)


def test_processed_split_round_trips(tmp_path):
    split = pp.Split(['quote " tab\\t emoji 😀', "plain"], [2, 0])
    pp.write_split(tmp_path / "s.jsonl", split)
    assert pp.read_split(tmp_path / "s.jsonl") == split


# ---- the one label rule (issue 10): every reader goes through parse_label -----------------------------
@pytest.mark.parametrize("token, expected", [("0", 0), ("2", 2), ("negative", 0), ("positive", 2)])
def test_label_tokens_accepted(token, expected):
    assert pp.parse_label(token, LABEL_NAMES, "f:1") == expected


@pytest.mark.parametrize(
    "token", ["1 ", " 1", "+2", "-0", "01", "1.0", "\uff11", "\u00b2", "Neutral", "neutral ", "", "3", "1e0", "0x1"]
)
def test_label_tokens_refused_the_same_way_in_every_reader(tmp_path, token):
    with pytest.raises(
        DataError,
        match=r"^f:7: label .* is not one of 0..2 \(negative, neutral, positive\); "
        r"a label is exactly an id in ASCII digits or a name",
    ):
        pp.parse_label(token, LABEL_NAMES, "f:7")
    raw = _raw_dir(tmp_path)  # the TweetEval labels file
    (raw / "val_labels.txt").write_text(f"0\n{token}\n")
    with pytest.raises(DataError, match=r"val_labels.txt:2: label "):
        pp.read_tweeteval(raw, LABEL_NAMES)
    path = tmp_path / "own.csv"  # a CSV (the field quoted, so spaces are the label's own)
    path.write_text(f'tweet,sentiment\nhi,2\nyo,"{token}"\n')
    with pytest.raises(DataError, match=r"own.csv:3: label "):
        pp.read_csv_dataset(path, CSV_PARAMS, LABEL_NAMES, seed=0)


def test_processed_labels_must_index_label_names(tmp_path):
    pp.write_split(tmp_path / "s.jsonl", pp.Split(["a", "b", "c"], [0, 2, 1]))
    assert pp.read_split(tmp_path / "s.jsonl", LABEL_NAMES).labels == [0, 2, 1]
    with pytest.raises(
        DataError,
        match=r"s.jsonl:2: label 2 is outside data.label_names \(2 names: negative, "
        r"positive\); .* run `dvc repro preprocess`",
    ):
        pp.read_split(tmp_path / "s.jsonl", ["negative", "positive"])
    (tmp_path / "t.jsonl").write_text('{"text": "a", "label": 1.5}\n{"text": "b", "label": true}\n')
    with pytest.raises(DataError, match=r"t.jsonl:1: label 1.5 is not a label id"):
        pp.read_split(tmp_path / "t.jsonl")


def test_csv_row_widths_must_match_the_header(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text('tweet,sentiment\n"a, quoted",2\n"spans\ntwo lines",1\nunquoted, comma,0\n')
    with pytest.raises(DataError, match=r"own.csv:5: row has 3 fields but the header has 2"):
        pp.read_csv_dataset(path, CSV_PARAMS, LABEL_NAMES, seed=0)


@pytest.mark.parametrize("reader", ["read_csv_dataset", "infer_label_names"])
def test_a_field_over_the_csv_limit_is_one_error_naming_the_line(tmp_path, reader):
    from src.data.data_sources import infer_label_names

    path = tmp_path / "own.csv"
    path.write_text('tweet,sentiment\nfine,0\n"' + "x" * (pp.MAX_CSV_FIELD_CHARS + 1) + '",1\n')
    read = {
        "read_csv_dataset": lambda: pp.read_csv_dataset(path, CSV_PARAMS, LABEL_NAMES, 0),
        "infer_label_names": lambda: infer_label_names(path, CSV_PARAMS),
    }[reader]
    with pytest.raises(DataError, match=r"own.csv:3: a field longer than 131,072 characters, the limit of a CSV field"):
        read()


def test_a_header_of_many_columns_is_checked_in_linear_time_and_shown_shortened(tmp_path):
    import time

    path = tmp_path / "own.csv"
    path.write_text(",".join(f"c{i % 150_000}" for i in range(300_000)) + "\nhello,0\n")  # every name twice
    started = time.process_time()
    with pytest.raises(DataError) as info:
        pp.read_csv_dataset(path, CSV_PARAMS, LABEL_NAMES, 0)
    assert time.process_time() - started < 20  # the quadratic check took hours at this width
    assert str(info.value).startswith(f"{path}:1: column(s) c0, c1, ")
    assert "(150,000 in all) appear more than once in the header" in str(info.value) and len(str(info.value)) < 2500


def test_lines_are_read_one_at_a_time_and_a_line_over_the_limit_is_cut(monkeypatch):
    import io

    monkeypatch.setattr(pp, "MAX_LINE_BYTES", 100)
    assert pp.split_lines(b"\xef\xbb\xbfa\r\n\n \nb", "f") == ["a", "", " ", "b"]
    with pytest.raises(DataError, match=r"^f:2: longer than 0 MB without a newline"):
        pp.split_lines(b"a\n" + b"x" * 101, "f")
    with pytest.raises(DataError, match=r"^f: file is empty$"):
        pp.split_lines(b"\n \n\t\n", "f")
    stream = io.BytesIO(b"\n" * 1000 + b"x" * 200)  # the cut comes after the blank lines, before reading on
    with pytest.raises(DataError, match=r"^<stdin>:1001: longer than"):
        list(pp.iter_lines(stream, "<stdin>"))
    assert stream.tell() == 1000 + 101


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("lol 😂😂 @bob", "lol face with tears of joy face with tears of joy @user"),
        ("I ❤️ NY 🇺🇸", "I heavy black heart NY flag"),  # variation selector dropped; a flag is one word
        ("👏🏽 well done", "clapping hands sign well done"),  # the skin-tone modifier only shapes the drawing
        ("👨\u200d👩\u200d👧 home", "man woman girl home"),  # a joined sequence: its parts
        ("a^b `x` naïve 胖 ‼", "a^b `x` naïve 胖 ‼"),  # ASCII symbols, letters, punctuation stay
    ],
)
def test_emoji_become_their_unicode_names(raw, expected):
    """The encoders' vocabularies and TweetEval's train split have no emoji: a symbol the models read
    as [UNK] becomes the words of its Unicode name, in training data and at prediction alike."""
    assert pp.normalize_tweet(raw) == expected


def test_prediction_reads_emoji_as_training_does(monkeypatch):
    """src.predict normalises with the same function, so a served tweet's emoji reach the model as words."""
    import numpy as np

    import src.predict as predict

    seen = []

    def fake_model(trained, texts, batch_size, device):  # stands in for the model, not for the code under test
        seen.extend(texts)
        return np.array([[0.1, 0.2, 0.7]] * len(texts))

    monkeypatch.setattr(predict, "predict_proba", fake_model)
    trained = type("Trained", (), {"label_names": ("negative", "neutral", "positive")})()
    rows = list(predict.classify(trained, ["so good 😍"]))
    assert seen == ["so good smiling face with heart-shaped eyes"]
    assert rows[0]["text"] == "so good 😍" and rows[0]["label"] == "positive"  # the output keeps the text as given
