//! Tokens → ids. Id 0 pads, id 1 stands for every token not in the vocabulary.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::tokenizer::Tokenizer;

pub const PAD: &str = "<pad>";
pub const UNK: &str = "<unk>";
pub const PAD_ID: usize = 0;
pub const UNK_ID: usize = 1;

/// Token ids of `text`; never empty (text without tokens is one unknown token), so every
/// input, even "" or "😀", gets a prediction.
pub fn encode(tokenizer: &Tokenizer, vocab: &Vocab, text: &str) -> Vec<usize> {
    encode_tokens(vocab, &tokenizer.tokenize(text))
}

/// Ids of already tokenized text, with the same never-empty rule as [`encode`].
pub fn encode_tokens(vocab: &Vocab, tokens: &[String]) -> Vec<usize> {
    let ids: Vec<usize> = tokens.iter().map(|t| vocab.id(t)).collect();
    if ids.is_empty() { vec![UNK_ID] } else { ids }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, usize>,
}

impl From<Vec<String>> for Vocab {
    fn from(tokens: Vec<String>) -> Self {
        let index = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect();
        Vocab { tokens, index }
    }
}

impl From<Vocab> for Vec<String> {
    fn from(vocab: Vocab) -> Self {
        vocab.tokens
    }
}

impl Vocab {
    /// The `max_size` most frequent tokens seen at least `min_freq` times (ties broken by the
    /// token itself, so the same corpus always gives the same ids), after PAD and UNK.
    pub fn build<'a>(token_lists: impl IntoIterator<Item = &'a [String]>, min_freq: usize, max_size: usize) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for tokens in token_lists {
            for t in tokens {
                *counts.entry(t.as_str()).or_default() += 1;
            }
        }
        let mut ranked: Vec<(&str, usize)> = counts.into_iter().filter(|&(_, n)| n >= min_freq).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let specials = [PAD.to_string(), UNK.to_string()];
        let keep = max_size.saturating_sub(specials.len());
        Vocab::from(
            specials.into_iter().chain(ranked.into_iter().take(keep).map(|(t, _)| t.to_string())).collect::<Vec<_>>(),
        )
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, token: &str) -> usize {
        self.index.get(token).copied().unwrap_or(UNK_ID)
    }

    pub fn token(&self, id: usize) -> &str {
        self.tokens.get(id).map(String::as_str).unwrap_or(UNK)
    }

    /// Checks the invariants a loaded vocabulary must keep.
    pub fn validate(&self) -> Result<(), String> {
        if self.tokens.get(PAD_ID).map(String::as_str) != Some(PAD)
            || self.tokens.get(UNK_ID).map(String::as_str) != Some(UNK)
        {
            return Err(format!("vocabulary must start with {PAD} and {UNK}"));
        }
        if self.index.len() != self.tokens.len() {
            return Err("vocabulary has duplicate tokens".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_frequent_tokens_get_the_first_ids() {
        let docs: Vec<Vec<String>> = vec![vec!["好".into(), "好".into(), "差".into()], vec!["好".into(), "书".into()]];
        let vocab = Vocab::build(docs.iter().map(Vec::as_slice), 1, 10);
        assert_eq!(vocab.token(2), "好");
        assert_eq!(vocab.id("没见过"), UNK_ID);
        assert_eq!(vocab.len(), 5);
        let small = Vocab::build(docs.iter().map(Vec::as_slice), 2, 10);
        assert_eq!(small.len(), 3);
        assert!(small.validate().is_ok());
    }
}

/// Pairs of adjacent token ids that get an embedding of their own (id = 2 + position; 0 pads,
/// 1 is every other pair). Character bigrams carry much of the meaning of Chinese words, at a
/// fraction of a word vocabulary's size.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "Vec<(u32, u32)>", into = "Vec<(u32, u32)>")]
pub struct Bigrams {
    pairs: Vec<(u32, u32)>,
    index: HashMap<(u32, u32), usize>,
}

impl From<Vec<(u32, u32)>> for Bigrams {
    fn from(pairs: Vec<(u32, u32)>) -> Self {
        let index = pairs.iter().enumerate().map(|(i, &p)| (p, i + 2)).collect();
        Bigrams { pairs, index }
    }
}

impl From<Bigrams> for Vec<(u32, u32)> {
    fn from(bigrams: Bigrams) -> Self {
        bigrams.pairs
    }
}

impl Bigrams {
    /// The `max_size - 2` most frequent pairs of known tokens seen at least `min_freq` times.
    pub fn build<'a>(sequences: impl IntoIterator<Item = &'a [usize]>, min_freq: usize, max_size: usize) -> Self {
        let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
        for seq in sequences {
            for w in seq.windows(2) {
                if w[0] != UNK_ID && w[1] != UNK_ID {
                    *counts.entry((w[0] as u32, w[1] as u32)).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<((u32, u32), usize)> = counts.into_iter().filter(|&(_, n)| n >= min_freq).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Bigrams::from(ranked.into_iter().take(max_size.saturating_sub(2)).map(|(p, _)| p).collect::<Vec<_>>())
    }

    /// Embedding rows needed: the pairs plus padding and unknown.
    pub fn len(&self) -> usize {
        self.pairs.len() + 2
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn id(&self, first: usize, second: usize) -> usize {
        self.index.get(&(first as u32, second as u32)).copied().unwrap_or(UNK_ID)
    }

    /// The bigram id at each position of `ids`: the pair it starts (the last token pairs with
    /// nothing and gets `<unk>`).
    pub fn ids(&self, ids: &[usize]) -> Vec<usize> {
        (0..ids.len()).map(|t| if t + 1 < ids.len() { self.id(ids[t], ids[t + 1]) } else { UNK_ID }).collect()
    }
}
