//! `disable_load_balance_on_write = dml_adaptive`: inside an explicit transaction, the tables a
//! statement wrote (and the objects `dml_adaptive_object_relationship_list` says depend on
//! them, or on a write function it called) are remembered, and later reads that touch any of
//! them go to the primary until the transaction ends; reads of other tables stay load
//! balanced. Objects are compared by bare name; functions are written `name()` in the list.

use std::collections::HashSet;

use sql::Classification;

use crate::child::catalog::bare;

/// `dml_adaptive_object_relationship_list`: (object, dependent object) pairs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Relationships(Vec<(String, String)>);

impl Relationships {
    /// Parses `'t1:t2,f1():tf'`; entries without a colon are an error.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((object, dependent)) = entry.split_once(':') else {
                return Err(format!(
                    "invalid entry \"{entry}\": expected \"object:dependent_object\""
                ));
            };
            let (object, dependent) = (normalize(object), normalize(dependent));
            if object.is_empty() || dependent.is_empty() {
                return Err(format!("invalid entry \"{entry}\": empty object name"));
            }
            out.push((object, dependent));
        }
        Ok(Relationships(out))
    }

    fn dependents_of<'a>(&'a self, object: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(o, _)| o == object)
            .map(|(_, d)| d.as_str())
    }
}

/// A bare, lower-case object name; functions keep their `()`.
fn normalize(name: &str) -> String {
    let name = name.trim();
    let (base, function) = match name.strip_suffix("()") {
        Some(b) => (b.trim(), true),
        None => (name, false),
    };
    let mut n = bare(base).trim_matches('"').to_ascii_lowercase();
    if function {
        n.push_str("()");
    }
    n
}

/// Objects written in the current transaction.
#[derive(Debug, Default)]
pub struct WrittenObjects(HashSet<String>);

impl WrittenObjects {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records what a write statement changed: its target tables, the functions it called
    /// that count as writes (`function_is_write`), and their dependents.
    pub fn note_write(
        &mut self,
        c: &Classification,
        function_is_write: impl Fn(&str) -> bool,
        rel: &Relationships,
    ) {
        let mut new: Vec<String> = c
            .written_tables
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .collect();
        for f in &c.functions {
            let f = bare(f);
            if function_is_write(f) {
                new.push(format!("{}()", f.to_ascii_lowercase()));
            }
        }
        // Dependents of dependents count too (t1 -> t2 -> t3).
        let mut i = 0;
        while i < new.len() {
            let deps: Vec<String> = rel.dependents_of(&new[i]).map(str::to_string).collect();
            for d in deps {
                if !new.contains(&d) {
                    new.push(d);
                }
            }
            i += 1;
        }
        self.0.extend(new);
    }

    /// Does `text` name anything written in this transaction (a cheap first test)?
    pub fn mentioned_in(&self, text: &str) -> bool {
        sql::mentions_any(
            text,
            self.0.iter().map(|o| o.strip_suffix("()").unwrap_or(o)),
        )
    }

    /// Does a read touch anything written in this transaction?
    pub fn touched_by(&self, c: &Classification) -> bool {
        if self.0.is_empty() {
            return false;
        }
        c.tables
            .iter()
            .any(|t| self.0.contains(&bare(t).to_ascii_lowercase()))
            || c.functions.iter().any(|f| {
                self.0
                    .contains(&format!("{}()", bare(f).to_ascii_lowercase()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sql::{classify, Rules};

    #[test]
    fn pgpool_regression_sequence() {
        let rules = Rules::default()
            .with_write_function_list(&["currval", "lastval", "nextval", "setval", "f1"])
            .unwrap();
        let rel = Relationships::parse("t1:t2, f1():tF").unwrap();
        let is_write = |f: &str| f == "f1";
        let mut w = WrittenObjects::default();
        let c = |q: &str| classify(q, &rules);
        assert!(!w.touched_by(&c("SELECT i FROM t2")));
        w.note_write(&c("INSERT INTO t1 values(1)"), is_write, &rel);
        assert!(w.touched_by(&c("SELECT i FROM t1")));
        assert!(w.mentioned_in("select * from T1") && !w.mentioned_in("select * from x"));
        assert!(!w.touched_by(&c("SELECT i FROM t3")));
        assert!(w.touched_by(&c("SELECT i FROM public.t2")));
        w.clear();
        assert!(!w.touched_by(&c("SELECT i FROM tF")));
        w.note_write(&c("SELECT f1(190)"), is_write, &rel);
        assert!(w.touched_by(&c("SELECT i FROM tF")));
        assert!(!w.touched_by(&c("SELECT i FROM t1")));
        assert!(Relationships::parse("t1").is_err());
        assert_eq!(Relationships::parse(" ").unwrap(), Relationships::default());
    }
}
