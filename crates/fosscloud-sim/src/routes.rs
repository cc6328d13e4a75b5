//! Yii 1.1 URL handling as the vm-manager configures it: the path is URL-decoded, trimmed of
//! `/`, stripped of the `.html` suffix, then matched against the six API rules (GET only,
//! anchored, no extra segments). Unmatched paths fall through to Yii's generic routing, which
//! reaches the API controller only as `api/api/<action>`; everything else is the HTML 404.

use crate::php;

/// The API controller's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    UserLogin,
    ServerRealms,
    VmList,
    VmAssign,
    VmMappingList,
    VmMappingAssign,
    Error,
}

impl Action {
    /// Looks an action id up like PHP's case-insensitive `method_exists`.
    fn from_id(id: &str) -> Option<Action> {
        Some(match id.to_ascii_lowercase().as_str() {
            "userlogin" => Action::UserLogin,
            "serverrealms" => Action::ServerRealms,
            "vmlist" => Action::VmList,
            "vmassign" => Action::VmAssign,
            "vmmappinglist" => Action::VmMappingList,
            "vmmappingassign" => Action::VmMappingAssign,
            "error" => Action::Error,
            _ => return None,
        })
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// An action of the API controller, with GET parameters set by the path (they override
    /// the query string's).
    Api {
        action: Action,
        params: Vec<(String, String)>,
    },
    /// `api/api/<id>` with an id the controller has no action for (JSON 404000).
    MissingAction,
    /// No controller: Yii's HTML error page. Carries the route Yii failed to resolve.
    NotFound { route: String },
}

/// PCRE `\w` with PHP's `/u` (Unicode properties): letters, digits, `_`.
fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// The parameter value as the rule stores it (`CUrlRule::$urlDecode` decodes once more).
fn param(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), php::urldecode(value))
}

/// Optional `(/<name>)?(/realm/<realm:\w+>)?` tail, as PCRE's backtracking resolves it.
/// `name_ok` tells what the first group accepts. An unmatched group before a matched one is
/// set to `""` (PHP fills it); unmatched trailing groups are not set at all.
fn optional_then_realm(
    rest: &[&str],
    name: &str,
    name_ok: fn(&str) -> bool,
) -> Option<Vec<(String, String)>> {
    match rest {
        [] => Some(vec![]),
        [one] if name_ok(one) => Some(vec![param(name, one)]),
        ["realm", realm] if is_word(realm) => Some(vec![
            (name.to_owned(), String::new()),
            param("realm", realm),
        ]),
        [one, "realm", realm] if name_ok(one) && is_word(realm) => {
            Some(vec![param(name, one), param("realm", realm)])
        }
        _ => None,
    }
}

fn realm_tail(rest: &[&str]) -> Option<Vec<(String, String)>> {
    match rest {
        [] => Some(vec![]),
        ["realm", realm] if is_word(realm) => Some(vec![param("realm", realm)]),
        _ => None,
    }
}

fn not_slash(s: &str) -> bool {
    !s.is_empty()
}

/// Matches the six API rules against a decoded, trimmed, suffix-stripped path.
fn match_api_rules(path: &str) -> Option<(Action, Vec<(String, String)>)> {
    let segs: Vec<&str> = path.split('/').collect();
    match segs.as_slice() {
        ["api", "user", "login", rest @ ..] => Some((Action::UserLogin, realm_tail(rest)?)),
        ["api", "server", "realms", rest @ ..] => Some((Action::ServerRealms, realm_tail(rest)?)),
        ["api", "vm", "list", rest @ ..] => {
            Some((Action::VmList, optional_then_realm(rest, "type", is_word)?))
        }
        ["api", "vm", "assign", pool, rest @ ..] if not_slash(pool) => {
            let mut params = vec![param("pool", pool)];
            params.extend(realm_tail(rest)?);
            Some((Action::VmAssign, params))
        }
        ["api", "vm", "mapping", "list", rest @ ..] => Some((
            Action::VmMappingList,
            optional_then_realm(rest, "mac", not_slash)?,
        )),
        ["api", "vm", "mapping", "assign", pool, rest @ ..] if not_slash(pool) => {
            let mut params = vec![param("pool", pool)];
            params.extend(optional_then_realm(rest, "mac", not_slash)?);
            Some((Action::VmMappingAssign, params))
        }
        _ => None,
    }
}

/// Resolves a request. `path_info` is the part after the application's base URL (raw,
/// still percent-encoded, without the query string).
pub(crate) fn resolve(is_get: bool, path_info: &str) -> Route {
    let decoded = php::urldecode(path_info);
    let trimmed = decoded.trim_matches('/');
    let path = trimmed.strip_suffix(".html").unwrap_or(trimmed);

    if is_get {
        if let Some((action, params)) = match_api_rules(path) {
            return Route::Api { action, params };
        }
    }

    // Generic routing: `<module>/<controller>/<action>[/<name>/<value>...]`.
    let segs: Vec<&str> = path.split('/').collect();
    if let ["api", "api", rest @ ..] = segs.as_slice() {
        let (id, pairs) = match rest {
            [] => ("", &[][..]),
            [id, pairs @ ..] => (*id, pairs),
        };
        let Some(action) = Action::from_id(id) else {
            return Route::MissingAction;
        };
        // Yii's parsePathInfo: name/value pairs, a lone trailing name gets "".
        let mut params = Vec::new();
        for pair in pairs.chunks(2) {
            let key = pair[0];
            if key.is_empty() {
                continue;
            }
            params.push((
                key.to_owned(),
                pair.get(1).copied().unwrap_or("").to_owned(),
            ));
        }
        return Route::Api { action, params };
    }
    Route::NotFound {
        route: path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(path: &str) -> Option<(Action, Vec<(String, String)>)> {
        match resolve(true, path) {
            Route::Api { action, params } => Some((action, params)),
            _ => None,
        }
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn reference_examples() {
        assert_eq!(
            api("/api/vm/list/realm/4000020"),
            Some((Action::VmList, p(&[("type", ""), ("realm", "4000020")])))
        );
        assert_eq!(
            api("/api/vm/list/realm"),
            Some((Action::VmList, p(&[("type", "realm")])))
        );
        assert_eq!(
            api("/api/vm/list/all/realm/4000020"),
            Some((Action::VmList, p(&[("type", "all"), ("realm", "4000020")])))
        );
        assert_eq!(api("/api/vm/list/dynamic/extra"), None);
        assert_eq!(api("/api/vm/list/all-vms"), None);
        assert_eq!(api("/api/vm/assign/realm/4000020"), None);
        assert_eq!(
            api("/api/vm/mapping/list/aa:bb:cc:dd:ee:ff/realm/4000020"),
            Some((
                Action::VmMappingList,
                p(&[("mac", "aa:bb:cc:dd:ee:ff"), ("realm", "4000020")])
            ))
        );
        assert_eq!(
            api("/api/vm/mapping/assign/P1/realm/4000020"),
            Some((
                Action::VmMappingAssign,
                p(&[("pool", "P1"), ("mac", ""), ("realm", "4000020")])
            ))
        );
    }

    #[test]
    fn slashes_suffix_and_decoding() {
        assert_eq!(api("/api/vm/list/"), Some((Action::VmList, vec![])));
        assert_eq!(api("/api/vm/list.html"), Some((Action::VmList, vec![])));
        assert_eq!(
            api("/api/vm/list/.html"),
            None,
            "suffix leaves an empty segment"
        );
        assert_eq!(api("/api/vm/%6Cist"), Some((Action::VmList, vec![])));
        assert_eq!(
            api("/api/vm/assign/a%2520b.html"),
            Some((Action::VmAssign, p(&[("pool", "a b")]))),
            "the rule decodes its parameters a second time"
        );
        assert_eq!(api("/api//vm/list"), None);
        assert_eq!(api("/API/vm/list"), None, "case-sensitive");
        assert_eq!(
            resolve(false, "/api/vm/list"),
            Route::NotFound {
                route: "api/vm/list".into()
            }
        );
    }

    #[test]
    fn generic_route_reaches_the_controller() {
        assert_eq!(
            resolve(false, "/api/api/vmList/type/all/realm"),
            Route::Api {
                action: Action::VmList,
                params: p(&[("type", "all"), ("realm", "")])
            }
        );
        assert_eq!(resolve(true, "/api/api/nothing"), Route::MissingAction);
        assert_eq!(resolve(true, "/api/api"), Route::MissingAction);
        assert!(matches!(resolve(true, "/api/vm"), Route::NotFound { .. }));
    }
}
