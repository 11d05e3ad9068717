"""Urgency cues in the 12 languages added in #15: a security problem is critical, a blocked customer or a
deadline is high, an explicit "no rush" is low, in each language (messages written for this test, not the
patterns' text); CJK cues match inside sentences without spaces; folding keeps non-Latin letters whole."""

from __future__ import annotations

import json

import pytest

from service.triage.models import UrgencyLevel
from service.triage.urgency import LEXICON_PATH, UNSPACED_LANGUAGES, UrgencyScorer, normalise

NEW_LANGUAGES = ["ar", "id", "hi", "tr", "it", "ru", "nl", "pl", "ja", "zh", "vi", "ko"]
CRITICAL = {
    "ar": "أرجو المساعدة، يبدو أن شخصا ما دخل إلى حسابي وغيّر عنوان الشحن",
    "id": "Tolong, sepertinya akun saya dibobol orang, ada pesanan yang bukan dari saya",
    "hi": "मदद कीजिए, लगता है किसी ने मेरे अकाउंट में लॉगिन करके ऑर्डर बदल दिया",
    "tr": "Yardım edin, sanırım hesabım hacklendi, adresim değiştirilmiş",
    "it": "Aiuto, qualcuno sta usando il mio account per fare ordini",
    "ru": "Помогите, похоже мой аккаунт взломали и поменяли адрес доставки",
    "nl": "Help, iemand heeft ingelogd op mijn account en bestellingen geplaatst",
    "pl": "Pomocy, chyba ktoś włamał się na moje konto i zmienił adres",
    "ja": "昨夜アカウントが乗っ取られたようで、住所が勝手に変わっていました",
    "zh": "我的账号好像被盗了，收货地址被人改掉了",
    "vi": "Giúp tôi với, tài khoản của tôi bị hack và địa chỉ đã bị đổi",
    "ko": "어젯밤에 제 계정이 해킹당한 것 같아요. 주소가 바뀌었어요",
}
HIGH = {
    "ar": "لا أستطيع الدخول إلى حسابي منذ الصباح",
    "id": "Dari tadi saya tidak bisa login ke aplikasi",
    "hi": "सुबह से मेरा पेमेंट नहीं हो पा रहा है",
    "tr": "Sabahtan beri uygulamaya giriş yapamıyorum",
    "it": "Da stamattina non riesco ad accedere all'app",
    "ru": "С утра не могу войти в личный кабинет",
    "nl": "Sinds vanochtend kan ik niet inloggen in de app",
    "pl": "Od rana nie mogę się zalogować do aplikacji",
    "ja": "今朝からアプリにログインできません",
    "zh": "从早上开始一直无法登录应用",
    "vi": "Từ sáng tới giờ tôi không đăng nhập được vào ứng dụng",
    "ko": "아침부터 앱에 로그인이 안 돼요",
}
DEADLINE = {
    "ar": "أحتاج الهدية اليوم لأن الحفلة مساء",
    "id": "Kadonya harus sampai hari ini karena acaranya nanti malam",
    "hi": "मुझे यह तोहफ़ा आज ही चाहिए, शाम को पार्टी है",
    "tr": "Hediye bugün lazım, akşam doğum günü partisi var",
    "it": "Mi serve il regalo oggi, stasera c'è la festa",
    "ru": "Подарок нужен сегодня, вечером день рождения",
    "nl": "Ik heb het cadeau vandaag nodig voor het feest",
    "pl": "Prezent potrzebuję dzisiaj, wieczorem są urodziny",
    "ja": "誕生日のプレゼントなので今日中に必要です",
    "zh": "这是生日礼物，今天就需要",
    "vi": "Tôi cần có món quà tặng sinh nhật trong hôm nay",
    "ko": "생일 선물이라서 오늘 꼭 필요해요",
}
LOW = {
    "ar": "سؤال بسيط عن المقاسات، الأمر غير مستعجل",
    "id": "Mau tanya soal ukuran, santai saja ya",
    "hi": "साइज़ के बारे में एक सवाल है, कोई जल्दी नहीं है",
    "tr": "Bedenlerle ilgili bir sorum var, hiç acelesi yok",
    "it": "Ho una domanda sulle taglie, con calma",
    "ru": "Вопрос по размерам, совсем не срочно",
    "nl": "Een vraag over de maten, er is geen spoed",
    "pl": "Mam pytanie o rozmiary, bez pośpiechu",
    "ja": "サイズについて質問です。急ぎませんので、お手すきの際にお願いします",
    "zh": "想问一下尺码的问题，不着急",
    "vi": "Cho tôi hỏi về kích cỡ, không gấp đâu",
    "ko": "사이즈 문의드려요. 급하지 않으니 천천히 답변 주세요",
}


@pytest.fixture(scope="module")
def scorer() -> UrgencyScorer:
    return UrgencyScorer()


@pytest.mark.parametrize("code", NEW_LANGUAGES)
def test_an_account_takeover_is_critical(scorer, code):
    assert scorer.assess(CRITICAL[code]).level is UrgencyLevel.critical, CRITICAL[code]


@pytest.mark.parametrize("code", NEW_LANGUAGES)
def test_a_customer_who_cannot_log_in_or_pay_is_high(scorer, code):
    assert scorer.assess(HIGH[code]).level is UrgencyLevel.high, HIGH[code]


@pytest.mark.parametrize("code", NEW_LANGUAGES)
def test_a_gift_needed_today_is_high(scorer, code):
    assert scorer.assess(DEADLINE[code]).level is UrgencyLevel.high, DEADLINE[code]


@pytest.mark.parametrize("code", NEW_LANGUAGES)
def test_an_explicit_no_rush_is_low(scorer, code):
    result = scorer.assess(LOW[code])
    assert result.level is UrgencyLevel.low, (LOW[code], result.reasons)


def test_negated_urgency_in_chinese_and_korean_does_not_raise(scorer):
    assert scorer.assess("这个问题并不紧急").level is not UrgencyLevel.high
    assert scorer.assess("배송 문의인데 안 급해요").level is not UrgencyLevel.high
    assert scorer.assess("Вопрос по доставке, не срочно").level is UrgencyLevel.low


def test_cjk_cues_match_inside_a_sentence_without_spaces(scorer):
    """`\\b` would never match here: 盗刷 sits between other Han characters."""
    result = scorer.assess("我的信用卡昨天被盗刷了三笔")
    assert result.level is UrgencyLevel.critical
    assert any("盗刷" in r for r in result.reasons)


def test_folding_keeps_letters_of_scripts_whose_marks_are_part_of_the_letter():
    assert normalise("계정이 해킹당했어요") == "계정이 해킹당했어요"  # Hangul recomposed, not jamo
    assert normalise("ガス") == "ガス"  # the voicing mark stays (ガ is not カ)
    assert normalise("йогурт Ёж") == "йогурт ёж"
    assert normalise("क्या") == "क्या"  # the virama stays
    assert normalise("أُرِيدُ إِلْغَاءَ") == "اريد الغاء"  # harakat and hamza seats dropped
    assert normalise("ĐƠN HÀNG khẩn cấp, ACİL, Zapłaciłem") == "don hang khan cap, acil, zaplacilem"


def test_patterns_of_the_new_languages_are_written_in_the_folded_form():
    spec = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))
    for cue in spec["cues"]:
        for group in cue.get("all_of") or [cue["patterns"]]:
            for code in NEW_LANGUAGES:
                for pattern in group.get(code, []):
                    assert normalise(pattern) == pattern, (cue["name"], code, pattern)
    assert UNSPACED_LANGUAGES == {"ja", "zh", "ko"}


@pytest.mark.parametrize(
    "text",
    [
        "Do you ship to Poland? I'd like a Polish invoice.",  # tr `polis…` is whole-word only
        "Please reply asap about the colours",  # id `asap` (smoke) is not a safety cue
        "Can I get the brand new model today?",  # nl `brand` (fire) and vi `can` are not cues
    ],
)
def test_words_of_the_new_languages_do_not_fire_on_english(scorer, text):
    result = scorer.assess(text)
    assert result.level is not UrgencyLevel.critical, result.reasons
