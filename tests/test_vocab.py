import numpy as np
import pytest

from src.core.errors import DataError, PipelineError
from src.data import glove
from src.data.tokenizer import tokenize
from src.data.vocab import PAD_ID, UNK_ID, Vocabulary, align_glove, coverage_stats, glove_words_wanted
from tests.fixtures import glove_lines, write_glove_zip


@pytest.mark.parametrize(
    "text, expected",
    [
        ("@user I'm SO happy!!!", ["<user>", "i'm", "so", "<allcaps>", "happy", "!", "<repeat>"]),
        ("#WakeUpWith11 #NASCAR", ["<hashtag>", "wake", "up", "with", "11", "<hashtag>", "nascar", "<allcaps>"]),
        ("sooooo good <3 :) :( :P", ["so", "<elong>", "good", "<heart>", "<smile>", "<sadface>", "<lolface>"]),
        ("won 5.5 to 3, see www.x.com", ["won", "<number>", "to", "<number>", "see", "<url>"]),
    ],
)
def test_tokenizer_speaks_glove_twitter(text, expected):
    assert tokenize(text) == expected


def test_special_ids_and_frequency_order():
    vocab = Vocabulary.build(["b a a", "c a b", "d"], min_freq=1)
    assert vocab.idx2word[:5] == ["<pad>", "<unk>", "a", "b", "c"]  # ties broken alphabetically
    assert (vocab.word2idx["<pad>"], vocab.word2idx["<unk>"]) == (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.encode("a xyzw") == [2, UNK_ID]


def test_min_freq_and_max_size():
    texts = ["a a a b b c", "a b d"]
    assert Vocabulary.build(texts, min_freq=2).idx2word == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary.build(texts, min_freq=1, max_size=3).idx2word == ["<pad>", "<unk>", "a"]


def test_save_and_load_round_trip(tmp_path):
    vocab = Vocabulary.build(["hello world", "hello"], min_freq=1)
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").idx2word == vocab.idx2word
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="bad.json: not a vocabulary file"):
        Vocabulary.load(tmp_path / "bad.json")


def test_glove_alignment_and_coverage(tmp_path):
    vocab = Vocabulary.build(["good good i'm fine", "bad xyzw"], min_freq=1)
    path = tmp_path / "g.txt"
    path.write_text(glove_lines(["good", "im", "bad", "unused"], 4))
    vectors, dim = glove.read_vectors(path, words=glove_words_wanted(vocab))
    assert dim == 4 and set(vectors) == {"good", "im", "bad"}  # only what the vocabulary needs
    matrix, found = align_glove(vocab, vectors, dim, seed=0)
    assert matrix.shape == (len(vocab), 4) and matrix.dtype == np.float32
    assert np.all(matrix[PAD_ID] == 0)
    np.testing.assert_array_equal(matrix[vocab.word2idx["good"]], vectors["good"])
    np.testing.assert_array_equal(matrix[vocab.word2idx["i'm"]], vectors["im"])  # apostrophe-free fallback
    assert not found[vocab.word2idx["xyzw"]]
    stats = coverage_stats(vocab, found, ["good good i'm fine", "bad xyzw"])
    # vocab: good, bad, fine, i'm, xyzw -> 3 of 5 found; tokens: 6 of which good x2, i'm, bad found
    assert stats["words_found"] == 3 and stats["words_missing"] == 2
    assert stats["vocab_coverage"] == 0.6 and stats["token_coverage"] == round(4 / 6, 4)
    again, _ = align_glove(vocab, vectors, dim, seed=0)
    np.testing.assert_array_equal(matrix, again)  # seeded


def test_malformed_glove_line_names_file_and_line(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("a 0.1 0.2\nb 0.3 x\n")
    with pytest.raises(DataError, match=r"g.txt:2: non-numeric"):
        glove.read_vectors(path)
    path.write_text("a 0.1 0.2\nb 0.3\n")
    with pytest.raises(DataError, match=r"g.txt:2: expected 2 values, got 1"):
        glove.read_vectors(path)


def test_glove_variants():
    assert glove.archive_url("twitter.27B") == "https://nlp.stanford.edu/data/glove.twitter.27B.zip"
    assert glove.archive_url("840B") == "https://nlp.stanford.edu/data/glove.840B.300d.zip"
    assert glove.member_name("6B", "300d") == "glove.6B.300d.txt"
    with pytest.raises(PipelineError, match=r"glove.dimension = '300d': GloVe twitter.27B comes in 25d, 50d"):
        glove.member_name("twitter.27B", "300d")
    with pytest.raises(PipelineError, match="42B comes in 300d only"):
        glove.check_variant("42B", "50d")


def test_archive_without_the_member_lists_what_it_has(tmp_path):
    archive = write_glove_zip(tmp_path / "g.zip", {"glove.twitter.27B.25d.txt": glove_lines(["a"], 25)})
    with pytest.raises(
        PipelineError, match=r"no member glove.twitter.27B.50d.txt \(it holds: glove.twitter.27B.25d.txt\)"
    ):
        glove.extract_member(archive, "glove.twitter.27B.50d.txt", tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="broken.zip: not a valid zip archive"):
        glove.extract_member(tmp_path / "broken.zip", "x", tmp_path / "out.txt")
