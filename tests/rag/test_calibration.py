"""Abstention thresholds belong to one embedding model: a data dir's own calibration, else the
shipped one, else a lexical-only default that says so; another model's entry is never used."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from rag import calibration
from rag.calibration import missing_detail
from rag.sentences import counted_terms
from rag.text import tokenize
from rag.types import Hit


def _hit(sentence: float, coverage: float) -> Hit:
    return Hit(1, 1.0, "t", 1, "c", None, None, None, coverage=coverage, sentence_cosine=sentence)


def test_an_unknown_model_gets_the_safe_default_and_says_so(tmp_path):
    found = calibration.load(tmp_path, "some/other-model|query: |passage: ")
    assert found.source == "default" and found.note and "calibrat" in found.note
    # term coverage alone decides: a close-sounding but unrelated cosine proves nothing
    assert found.abstain([_hit(0.99, 0.1)]) and not found.abstain([_hit(0.0, 0.5)])


def test_saved_thresholds_apply_to_their_model_only(tmp_path):
    calibration.save(tmp_path, "model-a||", 0.8, 0.4, "tune")
    calibration.save(tmp_path, "model-b||", 0.5, 0.3, "tune")
    a = calibration.load(tmp_path, "model-a||")
    assert (a.min_sentence, a.min_coverage, a.source, a.note) == (0.8, 0.4, "index", None)
    assert calibration.load(tmp_path, "model-b||").min_sentence == 0.5
    assert calibration.load(tmp_path, "model-c||").source == "default"
    assert (
        a.abstain([_hit(0.79, 0.39)])
        and not a.abstain([_hit(0.81, 0.0)])
        and not a.abstain([_hit(0.0, 0.41)])
    )
    assert a.abstain([])


def test_a_broken_calibration_file_falls_back_instead_of_failing(tmp_path):
    (tmp_path / calibration.FILE).write_text("{not json", encoding="utf-8")
    assert calibration.load(tmp_path, "model-a||").source in ("default", "shipped")


def test_shipped_calibrations_are_well_formed():
    table = json.loads(resources.files("rag").joinpath(calibration.FILE).read_text(encoding="utf-8"))
    assert table
    for identity, entry in table.items():
        assert identity.count("|") == 2
        assert 0.0 < entry["min_sentence"] <= 2.0 and 0.0 <= entry["min_coverage"] <= 1.01
        assert "tune" in entry["measured_on"]


# --- the detail the question asks for (rules 1 and 2; model-independent) -------------------------
LLAMA = Hit(
    1,
    1.0,
    "t",
    1,
    "kpd",
    None,
    None,
    None,
    coverage=0.6,
    sentence_cosine=0.9,
    post_text=(
        "Llama 3.1 получила зрение. Картиночный энкодер ViT-H на 630M параметров.\n"
        "На претрейне подают 16 кадров, на файнтюне — 64. Модель на 405 миллиардов параметров "
        "показывает 80,2 пункта в VQAv2."
    ),
)
# the index vocabulary: the post's terms and a few everyday ones other posts use
VOCAB = set(tokenize(LLAMA.post_text)) | set(
    tokenize("Meta обучение нужно памяти стоило модель понимать картинки большая")
)
SURE = calibration.Calibration(0.5, 0.2, "index")  # the evidence of LLAMA is far above these


def test_a_number_asked_but_not_in_the_posts_abstains():
    assert SURE.reason("Сколько долларов стоило обучение Llama 3.1?", [LLAMA], VOCAB) == (
        "no number of доллар in the posts"
    )
    assert SURE.decide("How much memory does Llama 3.1 need?", [LLAMA], VOCAB)
    assert "памят" in SURE.reason("Сколько памяти нужно Llama 3.1?", [LLAMA], VOCAB)


@pytest.mark.parametrize(
    "question",
    [
        "Сколько параметров у картиночного энкодера Llama 3.1?",  # "630M параметров"
        "How many parameters does the Llama 3.1 image encoder have?",  # English noun, Russian post
        "Сколько миллиардов параметров у самой большой Llama 3.1?",  # "405 миллиардов параметров"
    ],
)
def test_an_amount_the_posts_give_is_answered(question):
    assert not SURE.decide(question, [LLAMA], VOCAB), SURE.reason(question, [LLAMA], VOCAB)


def test_the_amount_must_be_of_the_named_thing_and_in_the_asked_unit():
    infdit = Hit(2, 1.0, "t", 2, "c", None, None, None, coverage=0.6, sentence_cosine=0.9,
                 post_text="Inf-DiT: U-Net размерами в сотни миллионов параметров требуют 80Gb VRAM.")  # fmt: skip
    vocab = VOCAB | {"inf-dit", "inf", "dit"}
    # 80Gb is memory, and LLAMA's "630M параметров" is another model's
    assert SURE.reason("How many parameters does Inf-DiT have?", [infdit, LLAMA], vocab) == (
        "no number of paramet in the posts"
    )
    assert not SURE.decide("How much memory does Inf-DiT need?", [infdit, LLAMA], vocab)


def test_a_count_without_a_unit_is_not_checked():
    # posts often write a count without its noun ("их 16, а на файнтюне — 64"): no abstention from it
    assert counted_terms("Сколько шагов семплирования нужно?") is None
    assert not SURE.decide("Сколько слоёв у энкодера Llama 3.1?", [LLAMA], VOCAB)


def test_a_version_inside_a_name_is_not_the_number_asked():
    hit = Hit(1, 1.0, "t", 1, "c", None, None, None, coverage=0.6, sentence_cosine=0.9,
              post_text="Вышла ExLlamaV3 для SD3.5 и Llama-3: быстрее прежнего.")  # fmt: skip
    vocab = {"exllamav3", "sd3.5", "llama-3", "llama", "памят", "нужн"}
    assert SURE.reason("Сколько памяти нужно ExLlamaV3?", [hit], vocab) == "no number of памят in the posts"


def test_a_cyrillic_name_unknown_to_the_corpus_abstains():
    assert SURE.reason("Что говорил Сбербанк про Llama 3.1?", [LLAMA], VOCAB) == "unknown name: Сбербанк"
    # a capital at the start of the question or of a sentence is not a name; a channel is known
    assert not SURE.decide("Llama 3.1 вышла. Есть ли у неё энкодер?", [LLAMA], VOCAB)
    assert not SURE.decide("Что писали в KPD про Llama 3.1?", [LLAMA], VOCAB - {"kpd"})


def test_an_answerable_paraphrase_is_not_abstained():
    # no shared name, no number asked: the calibrated evidence decides, and it is strong here
    assert not SURE.decide("Научилась ли большая модель от Meta понимать картинки?", [LLAMA], VOCAB)
    weak = Hit(1, 1.0, "t", 1, "c", None, None, None, coverage=0.1, sentence_cosine=0.4, post_text="x y")
    assert SURE.decide("Научилась ли большая модель от Meta понимать картинки?", [weak], VOCAB)


def test_a_name_the_corpus_writes_in_the_other_script_is_known():
    # the glossary says Singapore is "Сингапур"; SageAttention3 is a name the posts never use
    vocab = VOCAB | {"сингапур", "iclr", "sageattention"}
    assert not SURE.decide("What did the author think of ICLR in Singapore?", [LLAMA], vocab)
    assert SURE.reason("How fast is SageAttention3?", [LLAMA], vocab) == "unknown name: SageAttention3"


def test_a_russian_question_mostly_of_words_the_corpus_never_uses_abstains():
    vocab = VOCAB | {"рецепт"}
    assert SURE.reason("Какой рецепт борща?", [LLAMA], vocab) == "words the corpus never uses: борщ"
    # a paraphrase may use a word or two the posts do not (научилась), not half of them
    assert not SURE.decide("Научилась ли большая модель понимать картинки?", [LLAMA], vocab)
    # an English question about Russian posts: its ordinary words are unknown by nature
    assert not SURE.decide("Can the big model see pictures now?", [LLAMA], VOCAB)


def test_a_question_naming_a_known_subject_is_not_refused_for_its_everyday_words():
    """ "Расскажи подробно" and "быстрее" need not be corpus words when the question names the post's subject."""
    texts = [
        "SageAttention квантует Q и K в INT8. Ускорение внимания в 2 раза по сравнению с FlashAttention2."
    ]
    vocab = {t for text in texts for t in tokenize(text)}
    assert missing_detail("Расскажи подробно про SageAttention и INT8", texts, vocab) is None
    assert missing_detail("Во сколько раз SageAttention быстрее?", texts, vocab) is None
    assert missing_detail("Какой рецепт борща?", texts, vocab | {"рецепт"}) is not None
