//! Enum names as serde writes them, so no enum keeps a second, hand-written name table.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The name serde gives a unit variant (`Metric::F1Macro` → `f1_macro`).
pub fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// The unit variant serde reads from `name`, if there is one.
pub fn from_serde_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// Implements `Display` with the enum's serde name.
#[macro_export]
macro_rules! display_serde_name {
    ($($ty:ty),+ $(,)?) => {$(
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&$crate::config::serde_name(self))
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Metric, Task};

    #[test]
    fn names_round_trip_through_serde() {
        assert_eq!(serde_name(&Metric::F1Macro), "f1_macro");
        assert_eq!(from_serde_name::<Metric>("r2"), Some(Metric::R2));
        assert_eq!(from_serde_name::<Metric>("nope"), None);
        assert_eq!(Task::Regression.to_string(), "regression");
        for metric in Metric::ALL {
            assert_eq!(from_serde_name::<Metric>(&metric.to_string()), Some(metric));
        }
    }
}
