//! Request parameters and API paths.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters left as-is in a path segment or form value: RFC 3986 "unreserved".
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds an API path (relative to `/api2/json`) from segments, percent-encoding each one.
///
/// ```
/// use pve_auth::api_path;
/// assert_eq!(api_path(&["nodes", "pve1", "qemu", "100", "status", "current"]),
///            "/nodes/pve1/qemu/100/status/current");
/// assert_eq!(api_path(&["nodes", "pve1", "storage", "local", "content", "local:iso/a b.iso"]),
///            "/nodes/pve1/storage/local/content/local%3Aiso%2Fa%20b.iso");
/// ```
pub fn api_path(segments: &[&str]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.extend(utf8_percent_encode(s, SEGMENT));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// A value that can be sent as a PVE parameter. Booleans become `0`/`1` (PVE rejects
/// `true`/`false` in form encoding).
pub trait ParamValue {
    /// The wire form of the value.
    fn to_param(&self) -> String;
}

impl ParamValue for str {
    fn to_param(&self) -> String {
        self.to_owned()
    }
}

impl ParamValue for String {
    fn to_param(&self) -> String {
        self.clone()
    }
}

impl ParamValue for bool {
    fn to_param(&self) -> String {
        if *self { "1" } else { "0" }.to_owned()
    }
}

impl<T: ParamValue + ?Sized> ParamValue for &T {
    fn to_param(&self) -> String {
        (**self).to_param()
    }
}

macro_rules! display_param {
    ($($t:ty),*) => {$(
        impl ParamValue for $t {
            fn to_param(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
display_param!(
    lab_types::VmId,
    lab_types::NodeName,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64
);

/// Parameter names whose values are secret: never logged, printed or given to observers.
pub(crate) fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "tfa-challenge"
        || n == "otp"
        || n == "ticket"
        || n.contains("password")
        || n.contains("secret")
        || n.contains("token")
}

/// An ordered list of request parameters.
///
/// GET/DELETE send them in the query string, POST/PUT form-encoded. `Debug` redacts values
/// of secret parameters (`password`, `tfa-challenge`, …).
///
/// ```
/// use pve_auth::Params;
/// let p = Params::new().with("newid", 101u32).with("full", true).opt("pool", None::<&str>);
/// assert_eq!(p.to_query(), "newid=101&full=1");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `name`, builder style.
    pub fn with(mut self, name: &str, value: impl ParamValue) -> Self {
        self.insert(name, value);
        self
    }

    /// Adds `name` only when `value` is `Some`, builder style.
    pub fn opt<V: ParamValue>(mut self, name: &str, value: Option<V>) -> Self {
        if let Some(v) = value {
            self.insert(name, v);
        }
        self
    }

    /// Sets `name`; an existing entry keeps its position and gets the new value (PVE rejects a
    /// parameter given twice).
    pub fn insert(&mut self, name: &str, value: impl ParamValue) -> &mut Self {
        let value = value.to_param();
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
        self
    }

    /// Adds another `name=value` entry even if `name` is present: PVE reads a parameter
    /// of type array from the form key repeated once per item (`command=ip&command=-j`).
    /// Use it only for array parameters; [`Params::get`] returns the first value.
    ///
    /// ```
    /// use pve_auth::Params;
    /// let mut p = Params::new();
    /// for arg in ["ip", "-j", "addr"] {
    ///     p.append("command", arg);
    /// }
    /// assert_eq!(p.to_query(), "command=ip&command=-j&command=addr");
    /// ```
    pub fn append(&mut self, name: &str, value: impl ParamValue) -> &mut Self {
        self.0.push((name.to_owned(), value.to_param()));
        self
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let pos = self.0.iter().position(|(k, _)| k == name)?;
        Some(self.0.remove(pos).1)
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` without parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `application/x-www-form-urlencoded` form (also the query string). Everything but
    /// RFC 3986 unreserved characters is percent-encoded, spaces as `%20` rather than `+`,
    /// which every decoder reads the same way.
    pub fn to_query(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.0 {
            if !out.is_empty() {
                out.push('&');
            }
            out.extend(utf8_percent_encode(k, SEGMENT));
            out.push('=');
            out.extend(utf8_percent_encode(v, SEGMENT));
        }
        out
    }

    /// The parameters with secret values replaced by `***`.
    pub fn redacted(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_param(k) {
                    "***".to_owned()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

impl<K: AsRef<str>, V: ParamValue> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut p = Params::new();
        for (k, v) in iter {
            p.insert(k.as_ref(), v);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(api_path(&["version"]), "/version");
        assert_eq!(api_path(&[]), "/");
        assert_eq!(
            api_path(&["cluster", "firewall", "ipset", "lab ips", "10.0.0.0/24"]),
            "/cluster/firewall/ipset/lab%20ips/10.0.0.0%2F24"
        );
        assert_eq!(api_path(&["a?b#c%d"]), "/a%3Fb%23c%25d");
        assert_eq!(api_path(&["ümlaut"]), "/%C3%BCmlaut");
    }

    #[test]
    fn values_use_pve_spelling() {
        let p = Params::new()
            .with("full", true)
            .with("purge", false)
            .with("newid", 101u32)
            .with("cpulimit", 1.5f64)
            .with("name", "exam-01")
            .with("description", String::from("a b&c=d"))
            .opt("pool", Some("lab"))
            .opt::<&str>("target", None);
        assert_eq!(
            p.to_query(),
            "full=1&purge=0&newid=101&cpulimit=1.5&name=exam-01&description=a%20b%26c%3Dd&pool=lab"
        );
        assert_eq!(p.get("newid"), Some("101"));
        assert_eq!(p.len(), 7);
    }

    #[test]
    fn insert_replaces_in_place_and_remove_works() {
        let mut p = Params::new().with("a", 1u8).with("b", 2u8);
        p.insert("a", 3u8);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![("a", "3"), ("b", "2")]);
        assert_eq!(p.remove("a").as_deref(), Some("3"));
        assert_eq!(p.remove("a"), None);
        let q: Params = [("x", "1"), ("y", "2")].into_iter().collect();
        assert_eq!(q.to_query(), "x=1&y=2");
    }

    #[test]
    fn debug_redacts_secret_values() {
        let p = Params::new()
            .with("username", "root@pam")
            .with("password", "hunter2")
            .with("tfa-challenge", "PVE:!tfa!xyz")
            .with("cipassword", "pw2");
        let shown = format!("{p:?}");
        assert!(shown.contains("root@pam"));
        for s in ["hunter2", "PVE:!tfa!xyz", "pw2"] {
            assert!(!shown.contains(s), "{shown}");
        }
        assert!(is_secret_param("new-password") && !is_secret_param("vmid"));
    }
}
