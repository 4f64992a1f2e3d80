//! The recurrent cell kinds. Its own module, below both the model and the fused recurrence
//! that need it, so neither imports the other for it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Rnn,
    #[default]
    Lstm,
    Gru,
}

impl Arch {
    /// Gate blocks per step: the input and hidden projections are `gates * hidden` wide.
    pub(crate) fn gates(self) -> usize {
        match self {
            Arch::Rnn => 1,
            Arch::Lstm => 4,
            Arch::Gru => 3,
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rnn" => Ok(Arch::Rnn),
            "lstm" => Ok(Arch::Lstm),
            "gru" => Ok(Arch::Gru),
            other => Err(format!("unknown architecture '{other}' (expected rnn, lstm or gru)")),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Rnn => "rnn",
            Arch::Lstm => "lstm",
            Arch::Gru => "gru",
        })
    }
}
