//! Output helpers shared by the verbs: aligned tables (podman's look),
//! `--format json`, and Go-template-like `--format '{{.Field}}'` strings.

use crate::store::error::{err, Result};
use serde_json::Value;

/// Print rows under a header, each column as wide as its widest cell, two
/// spaces between columns (the last one unpadded).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(w[i] - c.chars().count() + 2));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(","),
        Value::Object(o) => o.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Render a `{{.Field}}` / `{{.A.B}}` / `{{json .}}` / `{{json .Field}}`
/// template against one object (`\t` and `\n` are the escapes docker takes).
pub fn render(tpl: &str, v: &Value) -> Result<String> {
    let tpl = tpl.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = tpl.as_str();
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else { return err(format!("unterminated {{{{ in format {tpl:?}")) };
        let expr = rest[i + 2..i + j].trim();
        let (json, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let mut cur = v;
        if path != "." {
            let Some(p) = path.strip_prefix('.') else { return err(format!("unsupported format expression {expr:?}")) };
            for k in p.split('.') {
                cur = match cur.get(k) {
                    Some(x) => x,
                    None => {
                        // Docker's and podman's field names differ in case only at times.
                        let lk = k.to_lowercase();
                        match cur.as_object().and_then(|o| o.iter().find(|(x, _)| x.to_lowercase() == lk)) {
                            Some((_, x)) => x,
                            None => return err(format!("format: no field {k:?}")),
                        }
                    }
                };
            }
        }
        out.push_str(&if json { cur.to_string() } else { scalar(cur) });
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What `--format` asked for.
pub enum Format {
    Table,
    Json,
    Template(String),
}

pub fn parse(f: &str) -> Format {
    match f {
        "" | "table" => Format::Table,
        "json" => Format::Json,
        t => Format::Template(t.strip_prefix("table ").unwrap_or(t).to_string()),
    }
}

/// Print objects as `--format` says (json: one pretty array).
pub fn print_objects(fmt: &Format, objs: &[Value]) -> Result<()> {
    match fmt {
        Format::Json => println!("{}", serde_json::to_string_pretty(objs)?),
        Format::Template(t) => {
            for o in objs {
                println!("{}", render(t, o)?);
            }
        }
        Format::Table => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let v = serde_json::json!({"ID": "abc", "Names": ["x"], "Labels": {"a": "b"}, "State": {"Status": "created"}});
        assert_eq!(render("{{.ID}}\\t{{.Names}}", &v).unwrap(), "abc\tx");
        assert_eq!(render("{{ .State.Status }} {{.labels}}", &v).unwrap(), "created a=b");
        assert_eq!(render("{{json .Names}}", &v).unwrap(), "[\"x\"]");
        assert!(render("{{.Nope}}", &v).is_err());
    }
}
