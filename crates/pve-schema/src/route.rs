//! Matching concrete request paths against the path templates of the extract.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

/// A segment tree of path templates. Each node maps methods to endpoint indices.
#[derive(Debug, Default)]
pub(crate) struct Router {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    literals: BTreeMap<String, Node>,
    /// `{name}` child: the parameter name and the subtree below it.
    param: Option<(String, Box<Node>)>,
    /// Method → index into `Schema::endpoints`.
    methods: BTreeMap<String, usize>,
}

/// The endpoint indices of a matched path and the decoded path parameters.
pub(crate) struct PathMatch<'a> {
    pub methods: &'a BTreeMap<String, usize>,
    pub params: BTreeMap<String, String>,
}

impl Router {
    /// Add `method template` pointing at endpoint `index`. Conflicting parameter names at
    /// one level are an error of the extract, reported with both names.
    pub fn insert(&mut self, method: &str, template: &str, index: usize) -> Result<(), String> {
        let mut node = &mut self.root;
        for seg in template.split('/').filter(|s| !s.is_empty()) {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let slot = node
                    .param
                    .get_or_insert_with(|| (name.to_owned(), Box::default()));
                if slot.0 != name {
                    return Err(format!(
                        "template '{template}' names parameter '{{{name}}}' where another \
                         template has '{{{}}}'",
                        slot.0
                    ));
                }
                node = &mut slot.1;
            } else {
                node = node.literals.entry(seg.to_owned()).or_default();
            }
        }
        node.methods.insert(method.to_owned(), index);
        Ok(())
    }

    /// Match a concrete path (segments percent-encoded). Empty segments are skipped, as
    /// PVE's router does. Literal segments are tried before `{param}` segments; a
    /// literal branch that leads nowhere falls back to the parameter branch.
    pub fn lookup(&self, path: &str) -> Option<PathMatch<'_>> {
        let mut segments = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            // A segment that does not decode to UTF-8 cannot name anything in the API.
            let decoded = percent_decode_str(raw).decode_utf8().ok()?;
            segments.push(decoded.into_owned());
        }
        let mut params = BTreeMap::new();
        let node = walk(&self.root, &segments, &mut params)?;
        Some(PathMatch {
            methods: &node.methods,
            params,
        })
    }
}

fn walk<'a>(
    node: &'a Node,
    segments: &[String],
    params: &mut BTreeMap<String, String>,
) -> Option<&'a Node> {
    let Some((first, rest)) = segments.split_first() else {
        return (!node.methods.is_empty()).then_some(node);
    };
    if let Some(child) = node.literals.get(first) {
        if let Some(found) = walk(child, rest, params) {
            return Some(found);
        }
    }
    let (name, child) = node.param.as_ref()?;
    let found = walk(child, rest, params)?;
    params.insert(name.clone(), first.clone());
    Some(found)
}
