"""Small stopword lists: RAKE's phrase delimiters and a cheap language detector.

A text's language is the one whose stopwords make up the largest share of its
words (a stopword-ratio detector: no model, no network). The lists are the most
frequent function words of each language, short enough to keep in source.
"""

from __future__ import annotations

from collections import Counter

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("""a about above after again against all also am an and any are as at be because been before
        being below between both but by can could did do does doing down during each few for from further had has
        have having he her here hers herself him himself his how i if in into is it its itself just me more most my
        myself no nor not now of off on once only or other our ours ourselves out over own same she should so some
        such than that the their theirs them themselves then there these they this those through to too under until
        up very was we were what when where which while who whom why will with would you your yours yourself
        yourselves may might must shall us use used using via within without upon however thus therefore""".split()),
    "de": frozenset("""aber alle als also am an auch auf aus bei bin bis bist da dann das dass dem den der des die
        dies diese dieser dieses doch dort du durch ein eine einem einen einer eines er es für hat hatte ich ihr im
        in ist ja jede kann kein mich mir mit nach nicht noch nun nur ob oder ohne sehr sein sich sie sind so über
        um und uns unter vom von vor war waren warum was weil wenn wer wie wir wird wo zu zum zur""".split()),
    "fr": frozenset("""au aux avec ce ces cette dans de des du elle en est et eux il ils je la le les leur lui ma
        mais me même mes moi mon ne nos notre nous on ou où par pas pour qu que qui sa se ses son sont sur ta te tes
        toi ton tu un une vos votre vous été être avoir fait comme plus très aussi""".split()),
    "es": frozenset("""a al algo como con de del desde donde el ella ellos en entre era es esta este esto estos fue
        ha hay la las le les lo los más me mi muy no nos o para pero por que quien se sin sobre su sus también te
        tiene todo un una uno unos y ya son ser está están""".split()),
    "it": frozenset("""a al alla anche che chi ci come con da dal dalla degli dei del della delle di e è gli ha ho
        i il in io la le lei lo loro ma mi nel nella non noi o per più quella quello questa questo se si sono su
        sua suo tra un una uno voi""".split()),
    "pt": frozenset("""a ao aos as até com como da das de dela dele do dos e ela ele eles em entre era essa esse
        esta este eu foi há isso isto já lhe mais mas me mesmo meu minha muito na não nas nem no nos o os ou para
        pela pelo por qual quando que se sem seu sua são também te tem um uma você""".split()),
    "nl": frozenset("""aan al als bij dan dat de der deze die dit doch door een en er ge het hij hoe hun ik in is je
        kan maar me men met mij na naar niet nog nu of om omdat ons ook op over te tot u uit van veel voor was wat
        we wel werd wie wij wordt zal ze zei zich zij zijn zo zonder""".split()),
}

#: Minimum words and stopword share before a language is claimed.
MIN_WORDS = 20
MIN_RATIO = 0.08


def detect_language(words: list[str]) -> dict[str, object] | None:
    """{code, stopword_ratio} of the best-matching language, or None when too unsure."""
    if len(words) < MIN_WORDS:
        return None
    # count distinct words once: the per-language sums then run over the vocabulary, not the text
    counts = Counter(w.lower() for w in words)
    n = len(words)
    scores = {lang: sum(c for w, c in counts.items() if w in stops) / n for lang, stops in STOPWORDS.items()}
    lang, ratio = max(scores.items(), key=lambda kv: kv[1])
    if ratio < MIN_RATIO:
        return None
    runner_up = max((r for code, r in scores.items() if code != lang), default=0.0)
    return {"code": lang, "stopword_ratio": round(ratio, 4), "margin": round(ratio - runner_up, 4)}
