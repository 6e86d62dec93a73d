//! Why Janus ends the machine, as a code a test harness can read (docs/console.md): Janus
//! writes it to QEMU's debug-exit port 0xf4 (`boot/src/machine.rs`), which ends QEMU with
//! exit code `code << 1 | 1`; `cargo janus` reads it back from there. One table for both.

/// Why Janus ends the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EndCode {
    AllPassed = 0,
    SomeFailed = 1,
    Refused = 2,
    Fatal = 3,
    NoGuests = 4,
}

impl EndCode {
    const ALL: [EndCode; 5] = [
        EndCode::AllPassed,
        EndCode::SomeFailed,
        EndCode::Refused,
        EndCode::Fatal,
        EndCode::NoGuests,
    ];

    /// The end whose code is `code`, if any.
    pub fn from_code(code: u8) -> Option<EndCode> {
        EndCode::ALL.iter().copied().find(|e| *e as u8 == code)
    }

    /// The end in words.
    pub fn words(self) -> &'static str {
        match self {
            EndCode::AllPassed => "all passed",
            EndCode::SomeFailed => "some failed",
            EndCode::Refused => "refused",
            EndCode::Fatal => "fatal",
            EndCode::NoGuests => "no guests",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_comes_back_from_its_code() {
        for e in EndCode::ALL {
            assert_eq!(EndCode::from_code(e as u8), Some(e));
        }
        assert_eq!(EndCode::from_code(5), None);
    }
}
