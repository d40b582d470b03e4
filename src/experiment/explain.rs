//! `rewind config --explain KIND`: every config key with its type, default
//! and documentation, generated from the config structs' doc comments (via
//! their JSON schema), so the text never drifts from the code.

use std::fmt::Write;

use anyhow::Result;
use schemars::schema::{InstanceType, RootSchema, Schema, SchemaObject, SingleOrVec};

use crate::experiment::config::ExperimentConfig;
use crate::tasks::registry;

fn resolve<'a>(root: &'a RootSchema, s: &'a SchemaObject) -> &'a SchemaObject {
    let mut cur = s;
    loop {
        if let Some(r) = &cur.reference {
            let name = r.rsplit('/').next().unwrap_or(r);
            if let Some(Schema::Object(o)) = root.definitions.get(name) {
                cur = o;
                continue;
            }
        }
        // `#[serde(default)]` struct fields are wrapped as allOf: [$ref]
        if let Some(sub) = &cur.subschemas {
            if let Some(all) = &sub.all_of {
                if let [Schema::Object(o)] = all.as_slice() {
                    cur = o;
                    continue;
                }
            }
        }
        return cur;
    }
}

/// The tag of one variant of a tagged enum: its property with a single
/// allowed value (`kind = "beam"`, `source = "file"`).
fn tag(o: &SchemaObject) -> Option<(String, String)> {
    o.object
        .as_ref()?
        .properties
        .iter()
        .find_map(|(name, p)| match p {
            Schema::Object(p) => match p.enum_values.as_deref() {
                Some([v]) => Some((name.clone(), v.to_string())),
                _ => None,
            },
            _ => None,
        })
}

/// The variants of a tagged enum (resolved), if `s` is one.
fn variants<'a>(root: &'a RootSchema, s: &'a SchemaObject) -> Vec<&'a SchemaObject> {
    let s = resolve(root, s);
    let Some(alts) = s
        .subschemas
        .as_ref()
        .and_then(|sub| sub.one_of.as_ref().or(sub.any_of.as_ref()))
    else {
        return vec![];
    };
    alts.iter()
        .filter_map(|x| match x {
            Schema::Object(o) => Some(resolve(root, o)),
            _ => None,
        })
        .filter(|o| tag(o).is_some())
        .collect()
}

fn type_name(root: &RootSchema, s: &SchemaObject) -> String {
    let s = resolve(root, s);
    if let Some(values) = &s.enum_values {
        return values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(sub) = &s.subschemas {
        if let Some(one) = sub.one_of.as_ref().or(sub.any_of.as_ref()) {
            let alts: Vec<String> = one
                .iter()
                .filter_map(|x| match x {
                    Schema::Object(o) => Some(resolve(root, o)),
                    _ => None,
                })
                .map(|o| {
                    // tagged enum variant: { kind = "mle" }
                    tag(o)
                        .map(|(k, v)| format!("{{ {k} = {v} }}"))
                        .unwrap_or_else(|| type_name(root, o))
                })
                .collect();
            return alts.join(" | ");
        }
    }
    let ty = |t: &InstanceType| format!("{t:?}").to_lowercase();
    match &s.instance_type {
        Some(SingleOrVec::Single(t)) if **t == InstanceType::Array => {
            let item = s
                .array
                .as_ref()
                .and_then(|a| a.items.as_ref())
                .and_then(|i| match i {
                    SingleOrVec::Single(b) => match b.as_ref() {
                        Schema::Object(o) => Some(type_name(root, o)),
                        _ => None,
                    },
                    SingleOrVec::Vec(v) => Some(format!("{}-tuple", v.len())),
                })
                .unwrap_or_else(|| "value".into());
            format!("list of {item}")
        }
        Some(SingleOrVec::Single(t)) => ty(t),
        Some(SingleOrVec::Vec(ts)) => ts
            .iter()
            .filter(|t| **t != InstanceType::Null)
            .map(ty)
            .collect::<Vec<_>>()
            .join(" | "),
        None => "value".into(),
    }
}

fn is_table(root: &RootSchema, s: &SchemaObject) -> bool {
    let s = resolve(root, s);
    s.object.as_ref().is_some_and(|o| !o.properties.is_empty())
}

/// One key: its type, default and the first paragraph of its doc, indented
/// by `indent`; for a tagged enum (`decoder = { kind = "beam", ... }`),
/// then the keys of every variant that has any, indented further.
fn key(root: &RootSchema, name: &str, p: &SchemaObject, indent: usize, out: &mut String) {
    let meta = p.metadata.as_ref().or(resolve(root, p).metadata.as_ref());
    let doc = meta.and_then(|m| m.description.clone()).unwrap_or_default();
    let doc = doc.split("\n\n").next().unwrap_or("").replace('\n', " ");
    let default = meta
        .and_then(|m| m.default.as_ref())
        .map(|d| format!(" (default {d})"))
        .unwrap_or_default();
    let (pad, w) = (" ".repeat(indent), 22usize.saturating_sub(indent).max(1));
    let _ = writeln!(out, "{pad}{name:<w$} {}{default}", type_name(root, p));
    if !doc.is_empty() {
        let _ = writeln!(out, "{pad}{:<w$} {doc}", "");
    }
    for v in variants(root, p) {
        let Some((tag_key, tag_value)) = tag(v) else {
            continue;
        };
        let Some(obj) = &v.object else { continue };
        let keys: Vec<(&String, &SchemaObject)> = obj
            .properties
            .iter()
            .filter(|(n, _)| **n != tag_key)
            .filter_map(|(n, s)| match s {
                Schema::Object(o) => Some((n, o)),
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{pad}  with {tag_key} = {tag_value}:");
        for (n, o) in keys {
            key(root, n, o, indent + 4, out);
        }
    }
}

fn section(root: &RootSchema, title: &str, s: &SchemaObject, out: &mut String) {
    let s = resolve(root, s);
    let Some(obj) = &s.object else { return };
    let _ = writeln!(out, "\n{title}");
    let mut nested = Vec::new();
    for (name, prop) in &obj.properties {
        let Schema::Object(p) = prop else { continue };
        if is_table(root, p) && !name.starts_with("objective") {
            nested.push((name.clone(), p.clone(), false));
            continue;
        }
        let items_table = resolve(root, p)
            .array
            .as_ref()
            .and_then(|a| a.items.as_ref())
            .and_then(|i| match i {
                SingleOrVec::Single(b) => match b.as_ref() {
                    Schema::Object(o) if is_table(root, o) => Some(o.clone()),
                    _ => None,
                },
                _ => None,
            });
        if let Some(item) = items_table {
            nested.push((name.clone(), item, true));
            continue;
        }
        key(root, name, p, 2, out);
    }
    for (name, p, array) in nested {
        let base = title.trim_matches(|c| c == '[' || c == ']');
        let full = if base.is_empty() {
            name.clone()
        } else {
            format!("{base}.{name}")
        };
        let t = if array {
            format!("[[{full}]]")
        } else {
            format!("[{full}]")
        };
        section(root, &t, &p, out);
    }
}

/// The explanation text for experiments of `kind`.
pub fn explain(kind: &str) -> Result<String> {
    let k = registry::kind(kind)?;
    let root = schemars::schema_for!(ExperimentConfig);
    let mut out = format!(
        "Config keys for experiments of kind `{kind}` ({}).\nUnknown keys are errors.\n",
        k.description
    );
    let props = root
        .schema
        .object
        .as_ref()
        .map(|o| o.properties.clone())
        .unwrap_or_default();
    for (name, prop) in &props {
        let Schema::Object(p) = prop else { continue };
        match name.as_str() {
            "data" => {
                let data = (k.data_schema)();
                section(&data, "[data]", &data.schema, &mut out);
            }
            "stages" => {
                if let Some(item) = p
                    .array
                    .as_ref()
                    .and_then(|a| a.items.as_ref())
                    .and_then(|i| match i {
                        SingleOrVec::Single(b) => match b.as_ref() {
                            Schema::Object(o) => Some(o.clone()),
                            _ => None,
                        },
                        _ => None,
                    })
                {
                    section(&root, "[[stages]]", &item, &mut out);
                }
            }
            "sweep" => {
                let _ = writeln!(
                    out,
                    "\n[sweep]\n  \"<dotted.path>\"     list of values\n  {:<20} A grid axis: any key above by its path (e.g. \"stages.0.lr\" = [1e-3, 3e-4]); runs = product of axes x experiment.seeds.",
                    ""
                );
            }
            _ => section(&root, &format!("[{name}]"), p, &mut out),
        }
    }
    Ok(out)
}
