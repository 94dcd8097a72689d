from chattune.eval.scoring import extract_gsm8k, score_gsm8k


def test_extract_final_line_only():
    assert extract_gsm8k("She sold 48+24 = 72 clips.\n#### 72") == "72"
    assert extract_gsm8k("#### 1,200\n") == "1200"
    assert extract_gsm8k("#### -3.50") == "-3.50"
    assert extract_gsm8k("#### 5.0") == "5"
    assert extract_gsm8k("The answer is 72.") is None
    assert extract_gsm8k("#### 72\nand then more text") is None
    assert extract_gsm8k("") is None


def test_score_counts_compliance_and_exact_match():
    refs = ["x\n#### 72", "y\n#### 10", "z\n#### 5"]
    preds = ["so\n#### 72", "#### 11", "it is 5"]
    s = score_gsm8k(preds, refs)
    assert (s.n, s.format_ok, s.exact) == (3, 2, 1)
    assert abs(s.compliance - 2 / 3) < 1e-9 and abs(s.accuracy - 1 / 3) < 1e-9


def test_regex_extractor_scores():
    from chattune.eval.scoring import regex_extractor, score_answers

    extract = regex_extractor(r"answer is (\w+)")
    s = score_answers(["the answer is B", "no idea", "the answer is C"],
                      ["answer is B", "answer is A", "answer is A"], extract)
    assert (s.format_ok, s.exact) == (2, 1)
