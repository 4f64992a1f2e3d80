//! The recurrent cell kinds. Its own module, below both the model and the fused recurrence
//! that need it, so neither imports the other for it.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

crate::schema::choice!(Arch, "architecture", [Rnn => "rnn", Lstm => "lstm", Gru => "gru"]);
