//! Scenarios that ship inside the library (and so inside the `mptcp` binary): the
//! experiments of `mptcp sim list` and the demo. Each is a TOML file in this crate's
//! `scenarios/` folder, compiled in together with the capacity traces it names, so
//! loading one reads no file; the same file also loads from disk with
//! [`Scenario::from_file`] (a test checks the two agree).

use crate::scenario::{Scenario, ScenarioError};

/// One built-in scenario.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// What `mptcp sim run NAME` takes.
    pub name: &'static str,
    /// One line for `mptcp sim list`.
    pub description: &'static str,
    /// The file name in `scenarios/`.
    pub file: &'static str,
    /// The scenario's TOML text.
    pub text: &'static str,
}

impl Builtin {
    /// The parsed scenario; its trace files come from memory.
    pub fn scenario(&self) -> Result<Scenario, ScenarioError> {
        Scenario::parse_with_files(self.text, &|file: &str| {
            TRACES
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, text)| (*text).to_owned())
                .ok_or_else(|| {
                    ScenarioError::Invalid(format!(
                        "built-in scenario '{}' names trace '{file}', which is not built in",
                        self.name
                    ))
                })
        })
    }
}

/// Every built-in scenario: the demo first, then the experiments.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "demo",
        description: "Wi-Fi + LTE laptop, MPTCP next to plain TCP, Wi-Fi drops out 3-5 s",
        file: "demo.toml",
        text: include_str!("../scenarios/demo.toml"),
    },
    Builtin {
        name: "wifi-lte",
        description: "aggregation: 60 MB over Wi-Fi (50 Mbit/s, 10 ms) and LTE (20 Mbit/s, 40 ms)",
        file: "wifi-lte.toml",
        text: include_str!("../scenarios/wifi-lte.toml"),
    },
    Builtin {
        name: "competing-tcp",
        description: "shared 20 Mbit/s bottleneck: MPTCP (LIA, 2 subflows) against one NewReno TCP",
        file: "competing-tcp.toml",
        text: include_str!("../scenarios/competing-tcp.toml"),
    },
    Builtin {
        name: "wifi-outage",
        description: "handover: Wi-Fi dies at 3 s and returns at 9 s, LTE carries on",
        file: "wifi-outage.toml",
        text: include_str!("../scenarios/wifi-outage.toml"),
    },
    Builtin {
        name: "roadside",
        description: "a car passes a roadside Wi-Fi AP every 10 s; LTE follows a drive trace",
        file: "roadside.toml",
        text: include_str!("../scenarios/roadside.toml"),
    },
    Builtin {
        name: "lossy-path",
        description: "one path with 5 % random loss, one clean path",
        file: "lossy-path.toml",
        text: include_str!("../scenarios/lossy-path.toml"),
    },
];

/// Capacity traces the built-in scenarios name, by the path they use.
const TRACES: &[(&str, &str)] = &[
    (
        "traces/lte-drive.csv",
        include_str!("../scenarios/traces/lte-drive.csv"),
    ),
    (
        "traces/roadside-wifi.csv",
        include_str!("../scenarios/traces/roadside-wifi.csv"),
    ),
];

/// The built-in scenario called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The names of every built-in scenario, comma-separated (for error messages).
pub fn builtin_names() -> String {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_builtin_parses_and_matches_its_file_on_disk() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        for b in BUILTINS {
            let embedded = b.scenario().unwrap_or_else(|e| panic!("{}: {e}", b.name));
            let on_disk =
                Scenario::from_file(dir.join(b.file)).unwrap_or_else(|e| panic!("{}: {e}", b.file));
            assert_eq!(embedded, on_disk, "{}", b.name);
            assert!(!embedded.flows.is_empty(), "{} has no traffic", b.name);
            assert!(
                embedded.flows.iter().all(|f| f.bytes.is_some()),
                "{}: every built-in flow has a size, so its summary can say whether \
                 everything arrived",
                b.name
            );
            assert!(embedded.sample_interval.is_some(), "{}: no plots", b.name);
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        for b in BUILTINS {
            assert_eq!(builtin(b.name).map(|f| f.file), Some(b.file));
            assert_eq!(BUILTINS.iter().filter(|x| x.name == b.name).count(), 1);
        }
        assert!(builtin("nope").is_none());
        assert!(builtin_names().starts_with("demo, wifi-lte"));
    }
}
