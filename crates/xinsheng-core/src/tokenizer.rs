//! Text → tokens. Characters or jieba words; both normalise the text first ([`normalize`]:
//! invisible characters removed, Unicode NFKC, ASCII lower-case) so that "ＧＯＯＤ" and "good",
//! or "不\u{200B}好用" and "不好用", are the same tokens.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// One token per Chinese character; runs of ASCII letters or digits stay one token.
    Char,
    /// jieba-rs word segmentation (HMM on for unseen words).
    Word,
}

crate::schema::choice!(TokenizerKind, "tokenizer", [Char => "char", Word => "word"]);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokenizer {
    pub kind: TokenizerKind,
    /// Longer texts keep their first and last `max_len / 2` tokens: reviews tend to state
    /// their verdict at the start or the end, rarely only in the middle.
    pub max_len: usize,
}

static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();

/// Loads jieba's dictionary (the text format of jieba's `dict.txt`). Builds without the
/// `embedded-dictionary` feature — the browser's, where the dictionary would double the
/// download for the default character model — call this before using a word tokenizer.
pub fn load_word_dictionary(text: &[u8]) -> Result<(), String> {
    let jieba = jieba_rs::Jieba::with_dict(&mut std::io::BufReader::new(text))
        .map_err(|e| format!("not a jieba dictionary: {e}"))?;
    let _ = JIEBA.set(jieba); // a second load keeps the first: both came from the same file
    Ok(())
}

/// Whether word tokenizers can run (the dictionary is embedded or has been loaded).
pub fn word_dictionary_available() -> bool {
    cfg!(feature = "embedded-dictionary") || JIEBA.get().is_some()
}

fn jieba() -> &'static jieba_rs::Jieba {
    #[cfg(feature = "embedded-dictionary")]
    return JIEBA.get_or_init(jieba_rs::Jieba::new);
    #[cfg(not(feature = "embedded-dictionary"))]
    JIEBA.get().expect("word tokenizer used before load_word_dictionary; the browser engine checks this first")
}

/// Whether `c` is a default-ignorable code point (Unicode's `Default_Ignorable_Code_Point`,
/// DerivedCoreProperties.txt, Unicode 15.1): invisible characters such as the zero-width space
/// (U+200B), joiners (U+200C/D), the word joiner (U+2060), the BOM (U+FEFF), the soft hyphen
/// (U+00AD), bidirectional marks and variation selectors. Web pages and rich-text editors leave
/// them inside words, where they would split "不好用" into different tokens.
pub fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// The one text normalisation, applied by every tokenizer (so by training, the CLI and the
/// browser alike): default-ignorable code points removed ([`is_default_ignorable`]), then
/// Unicode NFKC (full-width letters, digits and punctuation become their ASCII forms, the
/// ideographic space a space, compatibility ideographs and circled numbers their plain forms),
/// then ASCII lower-case. Idempotent: `normalize(normalize(t)) == normalize(t)`.
pub fn normalize(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out: String = text.chars().filter(|&c| !is_default_ignorable(c)).nfkc().collect();
    // NFKC can produce upper-case ASCII (Ｇ → G) and lower-casing can, rarely, make a new NFKC
    // composition possible: repeat until nothing changes (at most a couple of rounds).
    loop {
        let next: String =
            out.chars().filter(|&c| !is_default_ignorable(c)).map(|c| c.to_ascii_lowercase()).nfkc().collect();
        if next == out {
            return out;
        }
        out = next;
    }
}

impl Tokenizer {
    pub fn new(kind: TokenizerKind, max_len: usize) -> Self {
        Tokenizer { kind, max_len: max_len.max(1) }
    }

    /// Tokens of `text`, at most `max_len` of them. Never fails: empty or odd input gives an
    /// empty (or short) list.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        // Bound the work on huge inputs before segmenting: a token is at least one character,
        // so a generous character window on each side keeps every token we could keep.
        let window = self.max_len.saturating_mul(8);
        let chars: Vec<char> = text.chars().collect();
        let text: String = if chars.len() > 2 * window {
            chars[..window].iter().chain(&chars[chars.len() - window..]).collect()
        } else {
            text.to_string()
        };
        let text = normalize(&text);
        let tokens = match self.kind {
            TokenizerKind::Char => char_tokens(&text),
            TokenizerKind::Word => jieba()
                .cut(&text, true)
                .into_iter()
                .map(|t| t.word.trim())
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
        };
        truncate_head_tail(tokens, self.max_len)
    }
}

/// A token and the characters of the original (un-normalised) text it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpannedToken {
    pub token: String,
    /// Where the token's characters are in the text given to [`Tokenizer::tokenize_spans`]:
    /// `start..end` in Unicode scalar values (Python's `str` indices; in JavaScript,
    /// `Array.from(text).slice(start, end)`). `None` for every token of the rare text whose
    /// normalisation cannot be traced back character by character (see
    /// [`Tokenizer::tokenize_spans`]). Tokens made from one character (NFKC turns "㈱" into
    /// "(株)") share its span.
    pub span: Option<(usize, usize)>,
}

impl Tokenizer {
    /// [`Tokenizer::tokenize`]'s tokens (the very same list), each with the span of the
    /// original text it was read from, so that a display can weigh the characters the user
    /// wrote ("ＡＢＣ①") rather than their normalised form ("abc1").
    ///
    /// The spans come from normalising the text piece by piece (a character with the
    /// combining marks after it); where that differs from normalising it whole, which NFKC
    /// allows only for a few scripts' composing sequences (conjoining Hangul jamo, some Indic
    /// vowel signs), every span is `None`.
    pub fn tokenize_spans(&self, text: &str) -> Vec<SpannedToken> {
        let tokens = self.tokenize(text);
        let spans = self.spans(text, &tokens);
        let spans = spans.unwrap_or_else(|| vec![None; tokens.len()]);
        tokens.into_iter().zip(spans).map(|(token, span)| SpannedToken { token, span }).collect()
    }

    /// The source span of each of `tokens` (the result of `self.tokenize(text)`), or `None`
    /// where they cannot be traced.
    fn spans(&self, text: &str, tokens: &[String]) -> Option<Vec<Option<(usize, usize)>>> {
        // The same window as `tokenize`, kept as character ranges of the original text.
        let window = self.max_len.saturating_mul(8);
        let count = text.chars().count();
        let ranges: Vec<(usize, usize)> =
            if count > 2 * window { vec![(0, window), (count - window, count)] } else { vec![(0, count)] };
        let chars: Vec<char> = text.chars().collect();
        // The normalised text, each of its characters tagged with the original character
        // range (a piece: a character and the combining marks that follow it) it came from.
        let mut normalised = String::new();
        let mut origin: Vec<(usize, usize)> = Vec::new();
        for &(from, to) in &ranges {
            let mut i = from;
            while i < to {
                let mut j = i + 1;
                while j < to && is_combining(chars[j]) {
                    j += 1;
                }
                let piece: String = chars[i..j].iter().collect();
                for c in normalize(&piece).chars() {
                    normalised.push(c);
                    origin.push((i, j));
                }
                i = j;
            }
        }
        let whole: String = ranges.iter().flat_map(|&(a, b)| chars[a..b].iter()).collect();
        if normalised != normalize(&whole) {
            return None;
        }
        // Find the tokens in order in the normalised text (each is a substring of it, apart
        // from jieba's trimming, which only removes whitespace around a word).
        let norm_chars: Vec<char> = normalised.chars().collect();
        let mut cursor = 0;
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            let want: Vec<char> = token.chars().collect();
            let at = (cursor..=norm_chars.len().saturating_sub(want.len()))
                .find(|&k| norm_chars[k..k + want.len()] == want[..])?;
            let (start, _) = origin[at];
            let (_, end) = origin[at + want.len() - 1];
            out.push(Some((start, end)));
            cursor = at + want.len();
        }
        Some(out)
    }
}

/// Whether `c` is a combining mark (a non-zero canonical combining class): it joins the
/// character before it when the text is normalised.
fn is_combining(c: char) -> bool {
    unicode_normalization::char::canonical_combining_class(c) != 0 || is_default_ignorable(c)
}

fn char_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            tokens.push(std::mem::take(&mut run));
        }
        if !c.is_whitespace() && !c.is_control() {
            tokens.push(c.to_string());
        }
    }
    if !run.is_empty() {
        tokens.push(run);
    }
    tokens
}

fn truncate_head_tail(mut tokens: Vec<String>, max_len: usize) -> Vec<String> {
    if tokens.len() <= max_len {
        return tokens;
    }
    let head = max_len / 2;
    let tail = max_len - head;
    tokens.drain(head..tokens.len() - tail);
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_tokens_group_ascii_and_normalise_width() {
        let t = Tokenizer::new(TokenizerKind::Char, 100);
        assert_eq!(t.tokenize("屏幕ＧＯＯＤ 好 iPhone15!"), ["屏", "幕", "good", "好", "iphone15", "!"]);
    }

    #[test]
    fn invisible_characters_and_compatibility_forms_give_the_same_tokens() {
        let t = Tokenizer::new(TokenizerKind::Char, 100);
        let plain = t.tokenize("不好用");
        for variant in ["不\u{200B}好用", "不\u{200C}好\u{200D}用", "\u{FEFF}不好\u{2060}用", "不\u{00AD}好用\u{FE0F}"]
        {
            assert_eq!(t.tokenize(variant), plain, "{variant:?}");
        }
        assert_eq!(t.tokenize("①号ｱｲ㈱"), t.tokenize("1号アイ(株)"));
        let w = Tokenizer::new(TokenizerKind::Word, 100);
        assert_eq!(w.tokenize("质量\u{200B}很好"), w.tokenize("质量很好"));
        for text in ["ＡＢＣ\u{0301}", "Å", "a\u{200B}\u{0301}", "ﬁ ＧＯＯＤ", "㍿"] {
            assert_eq!(normalize(&normalize(text)), normalize(text), "{text:?}");
        }
    }

    /// The characters of the original text under each token's span.
    fn sources(t: &Tokenizer, text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        t.tokenize_spans(text)
            .into_iter()
            .map(|s| s.span.map_or(String::new(), |(a, b)| chars[a..b].iter().collect()))
            .collect()
    }

    #[test]
    fn spans_point_at_the_characters_the_user_wrote() {
        let t = Tokenizer::new(TokenizerKind::Char, 100);
        let text = "iPhone很好用ＡＢＣ①，物流ＯＫ！";
        let spanned = t.tokenize_spans(text);
        assert_eq!(spanned.iter().map(|s| s.token.clone()).collect::<Vec<_>>(), t.tokenize(text));
        assert_eq!(sources(&t, text), ["iPhone", "很", "好", "用", "ＡＢＣ①", "，", "物", "流", "ＯＫ", "！"]);
        // Invisible characters and combining marks stay with their neighbours; "㈱" gives three tokens, one span.
        assert_eq!(sources(&t, "不\u{200B}好 e\u{0301}"), ["不\u{200B}", "好", "e\u{0301}"]);
        assert_eq!(sources(&t, "㈱好"), ["㈱", "㈱", "㈱", "好"]);
        let w = Tokenizer::new(TokenizerKind::Word, 100);
        let text = "质量很好ＯＫ，推荐购买";
        let words = sources(&w, text);
        assert_eq!(words.concat(), text, "every character of a word text is under some word");
        assert!(words.contains(&"质量".to_string()), "{words:?}");
    }

    #[test]
    fn spans_of_long_texts_skip_the_dropped_middle() {
        let t = Tokenizer::new(TokenizerKind::Char, 4);
        let text = "一二三四五六七八";
        let spans: Vec<_> = t.tokenize_spans(text).into_iter().map(|s| s.span).collect();
        assert_eq!(spans, [Some((0, 1)), Some((1, 2)), Some((6, 7)), Some((7, 8))]);
        let huge = "好".repeat(100) + "差";
        let last = t.tokenize_spans(&huge).pop().unwrap();
        assert_eq!((last.token.as_str(), last.span), ("差", Some((100, 101))));
    }

    #[test]
    fn word_tokens_use_jieba() {
        let t = Tokenizer::new(TokenizerKind::Word, 100);
        let tokens = t.tokenize("这本书非常好看");
        assert!(tokens.contains(&"非常".to_string()), "{tokens:?}");
    }

    #[test]
    fn long_text_keeps_head_and_tail() {
        let t = Tokenizer::new(TokenizerKind::Char, 4);
        assert_eq!(t.tokenize("一二三四五六七八"), ["一", "二", "七", "八"]);
        let huge = "好".repeat(100_000) + "差";
        let tokens = t.tokenize(&huge);
        assert_eq!(tokens.len(), 4);
        assert_eq!(tokens[3], "差");
    }

    #[test]
    fn tokenization_is_deterministic() {
        for kind in [TokenizerKind::Char, TokenizerKind::Word] {
            let t = Tokenizer::new(kind, 64);
            let text = "质量很好，物流也快！但是包装有点简陋。Nice 👍";
            assert_eq!(t.tokenize(text), t.tokenize(text));
        }
    }

    #[test]
    fn odd_input_never_fails() {
        let t = Tokenizer::new(TokenizerKind::Word, 16);
        assert!(t.tokenize("").is_empty());
        assert!(t.tokenize(" \t\n ").is_empty());
        assert!(!t.tokenize("😀😀").is_empty());
    }
}
