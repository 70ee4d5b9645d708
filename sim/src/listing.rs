//! Reads back the checker's listing of a key's operations (the lines a
//! failing seed prints, `Operation`'s `Display`), so that a history the
//! checker found hard can be checked again on its own (`sim --check-history
//! FILE`) and kept as a fixture of the checker's self-check.

use crate::linearizability::{Call, Operation, Outcome};

/// Every line of `text` that looks like an operation (`[  invoked ..
/// completed] client C conn X#P at NODE: COMMAND -> OUTCOME`); other lines
/// are skipped. An operation line that does not parse is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Operation>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| line.starts_with('[') && line.contains("] client "))
        .map(|line| operation(line).ok_or_else(|| format!("not an operation: {line}")))
        .collect()
}

fn operation(line: &str) -> Option<Operation> {
    let (times, rest) = line.strip_prefix('[')?.split_once(']')?;
    let (invoked, completed_at) = times.split_once("..")?;
    let invoked = invoked.trim().parse().ok()?;
    let completed_at = match completed_at.trim() {
        "unknown" => None,
        at => Some(at.parse::<u64>().ok()?),
    };
    let rest = rest.trim().strip_prefix("client ")?;
    let (client, rest) = rest.split_once(" conn ")?;
    let (connection, rest) = rest.split_once('#')?;
    let (position, rest) = rest.split_once(" at ")?;
    let (node, rest) = rest.split_once(": ")?;
    let (command, outcome) = rest.rsplit_once(" -> ")?;
    let (key, call) = call(command)?;
    let completed = match (completed_at, outcome.trim()) {
        (None, "?") => None,
        (Some(at), outcome) => Some((at, Reader { text: outcome }.whole()?)),
        (None, _) => return None,
    };
    Some(Operation {
        client: client.parse().ok()?,
        connection: connection.parse().ok()?,
        position: position.parse().ok()?,
        node: node.to_string(),
        key,
        call,
        invoked,
        completed,
    })
}

/// A command as `Call::show_on` writes it, and its key.
fn call(text: &str) -> Option<(String, Call)> {
    if let Some(inner) = text.strip_prefix("MULTI; ").and_then(|t| t.strip_suffix("; EXEC")) {
        let mut key = None;
        let mut calls = Vec::new();
        for part in inner.split("; ") {
            let (k, call) = call(part)?;
            if key.get_or_insert_with(|| k.clone()) != &k {
                return None;
            }
            calls.push(call);
        }
        return Some((key?, Call::Transaction(calls)));
    }
    if let Some(rest) = text.strip_prefix("EXEC of SET ") {
        let (key_new, expected) = rest.split_once(" watched at ")?;
        let (key, new) = key_new.split_once(' ')?;
        let expected = match (Reader { text: expected }).whole()? {
            Outcome::Value(expected) => expected,
            _ => return None,
        };
        return Some((key.to_string(), Call::WatchedSet { expected, new: new.to_string() }));
    }
    let words: Vec<&str> = text.split(' ').collect();
    let (&name, &key) = (words.first()?, words.get(1)?);
    let args: Vec<String> = words[2..].iter().map(|w| w.to_string()).collect();
    let arg = |i: usize| args.get(i).cloned();
    let call = match (name, args.len()) {
        ("SET", 1) => Call::Set(arg(0)?),
        ("GET", 0) => Call::Get,
        ("INCR", 0) => Call::Incr,
        ("CAS", 2) => Call::Cas { expected: arg(0)?, new: arg(1)? },
        ("DEL", 0) => Call::Del,
        ("LPUSH", 1) => Call::LPush(arg(0)?),
        ("RPOP", 0) => Call::RPop,
        ("BRPOP", 0) => Call::BRPop,
        ("LRANGE", 2) => Call::LRange,
        ("SADD", 1) => Call::SAdd(arg(0)?),
        ("SREM", 1) => Call::SRem(arg(0)?),
        ("SPOP", 0) => Call::SPop,
        ("SMEMBERS", 0) => Call::SMembers,
        ("HSET", 2) => Call::HSet(arg(0)?, arg(1)?),
        ("HDEL", 1) => Call::HDel(arg(0)?),
        ("HINCRBY", 2) => Call::HIncrBy(arg(0)?),
        ("HGETALL", 0) => Call::HGetAll,
        ("ZADD", 2) => Call::ZAdd(arg(1)?, arg(0)?.parse().ok()?),
        ("ZINCRBY", 2) => Call::ZIncrBy(arg(1)?),
        ("ZREM", 1) => Call::ZRem(arg(0)?),
        ("ZPOPMIN", 0) => Call::ZPopMin,
        ("BZPOPMIN", 0) => Call::BZPopMin,
        ("ZRANGE", 3) => Call::ZRange,
        _ => return None,
    };
    Some((key.to_string(), call))
}

/// An `Outcome` in its `Debug` form (also `None` / `Some("..")` alone, for
/// a watched value, read as a `Value`).
struct Reader<'a> {
    text: &'a str,
}

impl Reader<'_> {
    fn whole(mut self) -> Option<Outcome> {
        let outcome = self.outcome()?;
        self.text.trim().is_empty().then_some(outcome)
    }

    fn eat(&mut self, prefix: &str) -> bool {
        let trimmed = self.text.trim_start();
        match trimmed.strip_prefix(prefix) {
            Some(rest) => {
                self.text = rest;
                true
            }
            None => false,
        }
    }

    fn outcome(&mut self) -> Option<Outcome> {
        if self.eat("Ok") {
            Some(Outcome::Ok)
        } else if self.eat("Aborted") {
            Some(Outcome::Aborted)
        } else if self.eat("Value(") {
            let value = self.option()?;
            self.eat(")").then_some(Outcome::Value(value))
        } else if self.eat("Integer(") {
            let end = self.text.find(')')?;
            let n = self.text[..end].trim().parse().ok()?;
            self.text = &self.text[end + 1..];
            Some(Outcome::Integer(n))
        } else if self.eat("Error(") {
            let message = self.string()?;
            self.eat(")").then_some(Outcome::Error(message))
        } else if self.eat("Replies(") {
            let replies = self.list(Self::outcome)?;
            self.eat(")").then_some(Outcome::Replies(replies))
        } else if self.eat("Items(") {
            let items = self.list(Self::string)?;
            self.eat(")").then_some(Outcome::Items(items))
        } else {
            self.option().map(Outcome::Value)
        }
    }

    fn option(&mut self) -> Option<Option<String>> {
        if self.eat("None") {
            Some(None)
        } else if self.eat("Some(") {
            let s = self.string()?;
            self.eat(")").then_some(Some(s))
        } else {
            None
        }
    }

    /// `[a, b, ..]` of what `item` reads.
    fn list<T>(&mut self, item: fn(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        if !self.eat("[") {
            return None;
        }
        let mut items = Vec::new();
        if self.eat("]") {
            return Some(items);
        }
        loop {
            items.push(item(self)?);
            if self.eat("]") {
                return Some(items);
            }
            if !self.eat(",") {
                return None;
            }
        }
    }

    /// A string in `Debug` quotes (`\"` and `\\` escapes).
    fn string(&mut self) -> Option<String> {
        if !self.eat("\"") {
            return None;
        }
        let mut out = String::new();
        let mut chars = self.text.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.text = &self.text[i + 1..];
                    return Some(out);
                }
                '\\' => out.push(chars.next()?.1),
                c => out.push(c),
            }
        }
        None
    }
}
