"""BM25 on scripts written without spaces (Chinese, Japanese, Thai) and on Korean: character bigrams, never a
whole sentence as one token."""

from __future__ import annotations

from service.kb.lexical import Analyzer, LexicalIndex, char_bigrams


def test_a_japanese_sentence_becomes_overlapping_bigrams_not_one_token():
    tokens = Analyzer("ja")("パスワードを忘れました")
    assert "パスワードを忘れました" not in tokens
    assert tokens[:4] == ["パス", "スワ", "ワー", "ード"]
    assert len(tokens) == len("パスワードを忘れました") - 1


def test_chinese_runs_are_split_at_punctuation_then_into_bigrams():
    assert Analyzer("zh")("我忘记了密码，无法登录") == [
        "我忘",
        "忘记",
        "记了",
        "了密",
        "密码",
        "无法",
        "法登",
        "登录",
    ]


def test_korean_words_between_spaces_are_split_into_bigrams_too():
    # particles are glued to the noun (비밀번호를 = password + object particle); bigrams share 비밀, 번호
    tokens = Analyzer("ko")("비밀번호를 잊어버렸어요")
    assert {"비밀", "밀번", "번호"} <= set(tokens)


def test_thai_text_without_spaces_is_split():
    tokens = Analyzer("th")("ลืมรหัสผ่าน")
    assert len(tokens) > 1 and "ลืมรหัสผ่าน" not in tokens


def test_a_single_character_stays_a_token_and_latin_words_keep_stemming():
    assert char_bigrams("店") == ["店"]
    tokens = Analyzer("en")("Returning the 店 laptop ラップトップ")
    assert "return" in tokens and "店" in tokens and "ラッ" in tokens


def test_full_width_latin_is_folded_to_ascii_before_stemming():
    assert Analyzer("en")("ＯＲＤＥＲ") == Analyzer("en")("order")


def test_bm25_finds_the_japanese_chunk_that_answers_a_differently_worded_question():
    texts = [
        "パスワードの再設定: サインイン画面で「パスワードをお忘れですか」をタップします。",
        "返品の方法: 注文を開き、「商品を返品」をタップします。",
        "配送状況の確認: 注文をタップして「配送を追跡」を開きます。",
    ]
    index = LexicalIndex(texts, ["ja"] * 3)
    hits = index.search("パスワードを忘れました", language="ja", top_n=3)
    assert hits and hits[0][0] == 0
    hits = index.search("返品したい", language="ja", top_n=3)
    assert hits and hits[0][0] == 1


def test_bm25_finds_the_chinese_and_korean_chunks_that_answer():
    zh = LexicalIndex(["重置密码：在登录页面点击忘记密码。", "退货：打开订单并点击退货。"], ["zh", "zh"])
    assert zh.search("我忘记了密码怎么办", language="zh", top_n=2)[0][0] == 0
    assert zh.search("我想退货", language="zh", top_n=2)[0][0] == 1
    ko = LexicalIndex(["비밀번호 재설정 방법", "반품 신청 방법"], ["ko", "ko"])
    assert ko.search("비밀번호를 잊어버렸어요", language="ko", top_n=2)[0][0] == 0
