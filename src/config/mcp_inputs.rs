//! Typed task inputs for MCP tools (API.md §13): `mcp: true`, `inputs:`,
//! `mcp_approval:` on a task, and how a task's `{name}` placeholders reach
//! its argv.
//!
//! Each `{name}` placeholder fills exactly one argv element. The executor only
//! knows "append args" (API.md §7), so a task with inputs is rewritten here into
//! `/bin/sh -c '<script>' sh <value1> <value2> …`, where the script refers to the
//! values only as quoted positional parameters (`"$1"`). A value is therefore
//! never parsed by a shell, whatever it contains: the program started by `exec`
//! receives each value as one argv element, byte for byte. Values are passed in
//! the order of [`TaskSpec::inputs`](super::TaskSpec) (sorted by name).

use super::{Diagnostic, diag_at};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::Path;

/// The JSON type of an input (`type:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Any string.
    String,
    /// A JSON integer (`i64`).
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false` (passed as the text `true`/`false`).
    Boolean,
}

impl InputType {
    fn parse(s: &str) -> Option<InputType> {
        Some(match s {
            "string" => InputType::String,
            "integer" => InputType::Integer,
            "number" => InputType::Number,
            "boolean" => InputType::Boolean,
            _ => return None,
        })
    }
    /// The JSON Schema `type` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
        }
    }
}

/// One declared input of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    /// `^[A-Za-z_][A-Za-z0-9_]{0,63}$`; the placeholder is `{name}`.
    pub name: String,
    /// Its JSON type.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// Free text for the tool's schema.
    pub description: Option<String>,
    /// Whether a call must give it (default `false`: a missing value is "").
    pub required: bool,
    /// Allowed values, if restricted (JSON values of `kind`).
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<serde_json::Value>>,
}

/// When an MCP call of the task needs a person's approval first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum McpApproval {
    /// Never (default).
    #[default]
    Never,
    /// Every call waits for an approval (API.md §8) before it runs.
    Always,
}

/// A YAML scalar in an `enum:` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum RawScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// One raw `inputs:` entry.
#[derive(Deserialize)]
pub(crate) struct RawInput {
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    description: Option<String>,
    required: Option<bool>,
    #[serde(rename = "enum")]
    allowed: Option<Spanned<Vec<RawScalar>>>,
}

fn valid_input_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Validate `inputs:` of task `task`; appends problems to `errs`.
pub(super) fn validate_inputs(
    raw: BTreeMap<String, Spanned<RawInput>>,
    task: &str,
    file: &Path,
    errs: &mut Vec<Diagnostic>,
) -> Vec<InputSpec> {
    let mut out = Vec::new();
    for (name, r) in raw {
        if !valid_input_name(&name) {
            errs.push(diag_at(
                file,
                &r,
                format!("task '{task}': invalid input name '{name}': must match ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$"),
            ));
            continue;
        }
        let kind = match &r.value.kind {
            None => InputType::String,
            Some(k) => match InputType::parse(&k.value) {
                Some(t) => t,
                None => {
                    errs.push(diag_at(
                        file,
                        k,
                        format!(
                            "task '{task}': input '{name}': unknown type '{}'; use string, integer, number or boolean",
                            k.value
                        ),
                    ));
                    continue;
                }
            },
        };
        let allowed = match &r.value.allowed {
            None => None,
            Some(list) => {
                let mut vals = Vec::new();
                for s in &list.value {
                    let v = match s {
                        RawScalar::Bool(b) => serde_json::Value::Bool(*b),
                        RawScalar::Int(i) => serde_json::Value::from(*i),
                        RawScalar::Float(f) => serde_json::Value::from(*f),
                        RawScalar::Str(s) => serde_json::Value::String(s.clone()),
                    };
                    if check_value(kind, &v).is_err() {
                        errs.push(diag_at(
                            file,
                            list,
                            format!(
                                "task '{task}': input '{name}': enum value {v} is not of type {}",
                                kind.as_str()
                            ),
                        ));
                    }
                    vals.push(v);
                }
                if vals.is_empty() {
                    errs.push(diag_at(
                        file,
                        list,
                        format!("task '{task}': input '{name}': enum must not be empty"),
                    ));
                }
                Some(vals)
            }
        };
        out.push(InputSpec {
            name,
            kind,
            description: r.value.description.clone(),
            required: r.value.required.unwrap_or(false),
            allowed,
        });
    }
    out
}

/// Check one JSON value against a type. Errors: a lowercase message.
fn check_value(kind: InputType, v: &serde_json::Value) -> Result<(), String> {
    let ok = match kind {
        InputType::String => v.is_string(),
        InputType::Integer => v.is_i64() || v.is_u64(),
        InputType::Number => v.is_number(),
        InputType::Boolean => v.is_boolean(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("must be of type {}, not {v}", kind.as_str()))
    }
}

/// The argv element text of a value: strings as is, others as JSON (`42`, `true`).
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Turn a call's arguments into the positional args of a task with `inputs`
/// (declaration order = `inputs` order; a missing optional input is "").
///
/// Errors: a lowercase message naming the input: missing required, wrong type,
/// not in `enum`, or `arguments` not an object. Unknown arguments are ignored
/// (API.md §2: unknown fields are ignored).
pub fn positional_args(
    inputs: &[InputSpec],
    arguments: Option<&serde_json::Value>,
) -> Result<Vec<String>, String> {
    let empty = serde_json::Map::new();
    let obj = match arguments {
        None | Some(serde_json::Value::Null) => &empty,
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => return Err("arguments must be a JSON object".into()),
    };
    let mut out = Vec::with_capacity(inputs.len());
    for i in inputs {
        match obj.get(&i.name).filter(|v| !v.is_null()) {
            None if i.required => return Err(format!("missing required argument '{}'", i.name)),
            None => out.push(String::new()),
            Some(v) => {
                check_value(i.kind, v).map_err(|e| format!("argument '{}' {e}", i.name))?;
                if let Some(allowed) = &i.allowed
                    && !allowed.iter().any(|a| json_eq(a, v))
                {
                    let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
                    return Err(format!(
                        "argument '{}' must be one of {}, not {v}",
                        i.name,
                        list.join(", ")
                    ));
                }
                let text = value_text(v);
                if text.contains('\0') {
                    return Err(format!(
                        "argument '{}' contains a NUL character, which no argv element can hold",
                        i.name
                    ));
                }
                out.push(text);
            }
        }
    }
    Ok(out)
}

fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The placeholders `{name}` in `s`, as `(byte range, name)`.
fn placeholders(s: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // `${VAR}` is shell syntax, not a placeholder.
        if b[i] == b'{'
            && (i == 0 || b[i - 1] != b'$')
            && let Some(end) = s[i + 1..].find('}')
        {
            let name = &s[i + 1..i + 1 + end];
            if valid_input_name(name) {
                out.push((i..i + end + 2, name));
                i += end + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Replace each `{name}` in `text` by `"$N"` (N = 1 + the input's index);
/// literal text goes through `lit`. Errors: an unknown placeholder.
fn render(
    text: &str,
    inputs: &[InputSpec],
    used: &mut [bool],
    lit: &dyn Fn(&str) -> String,
) -> Result<String, String> {
    let mut out = String::new();
    let mut last = 0;
    for (range, name) in placeholders(text) {
        let Some(idx) = inputs.iter().position(|i| i.name == name) else {
            return Err(format!("placeholder '{{{name}}}' names no declared input"));
        };
        used[idx] = true;
        if range.start > last {
            out.push_str(&lit(&text[last..range.start]));
        }
        out.push_str(&format!("\"${{{}}}\"", idx + 1));
        last = range.end;
    }
    if last < text.len() {
        out.push_str(&lit(&text[last..]));
    }
    Ok(out)
}

/// Rewrite a task command with placeholders into the shell form described in
/// the module docs. Argv form: `exec 'prog' 'arg' "${1}" …`; shell form: the
/// text with each `{name}` replaced by `"${N}"`.
///
/// Errors: a placeholder naming no input, or an input never used.
pub fn rewrite_command(
    command: &super::CommandSpec,
    inputs: &[InputSpec],
) -> Result<String, String> {
    let mut used = vec![false; inputs.len()];
    let script = match command {
        super::CommandSpec::Argv(v) => {
            let mut parts = vec!["exec".to_string()];
            for el in v {
                let r = render(el, inputs, &mut used, &sh_quote)?;
                parts.push(if r.is_empty() { "''".into() } else { r });
            }
            parts.join(" ")
        }
        super::CommandSpec::Shell(s) => render(s, inputs, &mut used, &|t: &str| t.to_string())?,
    };
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(format!(
            "input '{}' is not used as a {{{}}} placeholder in the command",
            inputs[i].name, inputs[i].name
        ));
    }
    Ok(script)
}

/// Parse `mcp_approval:`. Errors: a diagnostic for other values.
pub(super) fn parse_approval(
    v: Option<&Spanned<String>>,
    task: &str,
    file: &Path,
    errs: &mut Vec<Diagnostic>,
) -> McpApproval {
    match v {
        None => McpApproval::Never,
        Some(s) => match s.value.as_str() {
            "never" => McpApproval::Never,
            "always" => McpApproval::Always,
            other => {
                errs.push(diag_at(
                    file,
                    s,
                    format!(
                        "task '{task}': mcp_approval must be 'never' or 'always', not '{other}'"
                    ),
                ));
                McpApproval::Never
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::CommandSpec;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever the value, the program gets it as exactly one argv element.
        /// (`lit` has no `$`: `${v}` is an environment reference, never a placeholder.)
        #[test]
        fn any_value_reaches_argv_verbatim(v in "[^\\x00]{0,40}", lit in "[^\\x00{}$]{0,10}") {
            let inputs = vec![input("v", InputType::String, true)];
            let cmd = CommandSpec::Argv(vec!["printf".into(), "%s".into(), format!("{lit}{{v}}")]);
            let script = rewrite_command(&cmd, &inputs).unwrap();
            let args = positional_args(&inputs, Some(&json!({"v": v}))).unwrap();
            let out = std::process::Command::new("/bin/sh").args(["-c", &script, "sh"]).args(&args).output().unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&out.stdout).into_owned(), format!("{lit}{v}"));
        }

        #[test]
        fn positional_args_never_panics(j in "\\PC{0,60}") {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&j) {
                let inputs = vec![input("a", InputType::Integer, false), input("b", InputType::Boolean, true)];
                let _ = positional_args(&inputs, Some(&v));
            }
        }
    }

    #[test]
    fn nul_is_refused() {
        let inputs = vec![input("a", InputType::String, true)];
        assert!(
            positional_args(&inputs, Some(&json!({"a": "x\u{0}y"})))
                .unwrap_err()
                .contains("NUL")
        );
    }

    fn input(name: &str, kind: InputType, required: bool) -> InputSpec {
        InputSpec {
            name: name.into(),
            kind,
            description: None,
            required,
            allowed: None,
        }
    }

    #[test]
    fn argv_template_becomes_positional_script() {
        let inputs = vec![
            input("a", InputType::String, true),
            input("n", InputType::Integer, false),
        ];
        let cmd = CommandSpec::Argv(vec![
            "echo".into(),
            "it's".into(),
            "--n={n}".into(),
            "{a}".into(),
        ]);
        let s = rewrite_command(&cmd, &inputs).unwrap();
        assert_eq!(s, r#"exec 'echo' 'it'\''s' '--n='"${2}" "${1}""#);
        let args = positional_args(&inputs, Some(&json!({"a": "$(rm -rf ~); `x`"}))).unwrap();
        assert_eq!(args, vec!["$(rm -rf ~); `x`".to_string(), String::new()]);
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &s, "sh"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "it's --n= $(rm -rf ~); `x`\n"
        );
    }

    #[test]
    fn shell_variables_are_not_placeholders() {
        let inputs = vec![input("a", InputType::String, true)];
        let s = rewrite_command(&CommandSpec::Shell("echo ${HOME} {a}".into()), &inputs).unwrap();
        assert_eq!(s, r#"echo ${HOME} "${1}""#);
    }

    #[test]
    fn unknown_and_unused_placeholders_are_errors() {
        let inputs = vec![input("a", InputType::String, true)];
        let e = rewrite_command(&CommandSpec::Argv(vec!["x".into(), "{b}".into()]), &inputs);
        assert!(e.unwrap_err().contains("'{b}'"));
        let e = rewrite_command(&CommandSpec::Argv(vec!["x".into()]), &inputs);
        assert!(e.unwrap_err().contains("input 'a'"));
    }

    #[test]
    fn arguments_are_type_checked() {
        let mut i = input("n", InputType::Integer, true);
        i.allowed = Some(vec![json!(1), json!(2)]);
        assert!(
            positional_args(&[i.clone()], Some(&json!({})))
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            positional_args(&[i.clone()], Some(&json!({"n": "1"})))
                .unwrap_err()
                .contains("type integer")
        );
        assert!(
            positional_args(&[i.clone()], Some(&json!({"n": 3})))
                .unwrap_err()
                .contains("one of")
        );
        assert_eq!(
            positional_args(&[i], Some(&json!({"n": 2}))).unwrap(),
            vec!["2"]
        );
    }
}
