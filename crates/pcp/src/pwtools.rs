//! `pg_md5` and `pg_enc`: print a password's md5 (the pcp.conf form) or AES form, or
//! write a `user:secret` entry into the pool_passwd file named by pgpool.conf (beside
//! it when relative). Options, messages and file formats follow Pgpool-II 4.3.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::auth;

const DEFAULT_CONF: &str = "/etc/pgpool2/pgpool.conf";
const MAX_INPUT: usize = 128;

pub const PG_MD5_USAGE: &str = "Usage:

  pg_md5 [OPTIONS]
  pg_md5 <PASSWORD>

  --prompt, -p         Prompt password using standard input.
  --md5auth, -m        Produce md5 authentication password.
  --username, -u USER  When producing a md5 authentication password,
                       create the pool_passwd entry for USER.
  --config-file, -f CONFIG-FILE  Specify pgpool.conf.
  --input-file, -i INPUT-FILE  Specify file containing username and password pairs.
  --help, -h           This help menu.

Warning: At most 128 characters are allowed for input.
Warning: Plain password argument is deprecated for security concerns
         and kept for compatibility. Please prefer using password
         prompt or input file method.
";

pub fn pg_enc_usage() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    format!(
        "pgpool-II version 4.3.5 (tamahomeboshi),
  password encryption utility for Pgpool

Usage:
  pg_enc [OPTIONS] <PASSWORD>
  -k, --key-file=KEY_FILE
                       Set the path to the encryption key file.
                       Default: {home}/.pgpoolkey
                       Can be overridden by the PGPOOLKEYFILE environment variable.
  -K, --enc-key=ENCRYPTION_KEY
                       Encryption key to be used for encrypting database passwords.
  -f, --config-file=CONFIG_FILE
                       Specifies the pgpool.conf file.
  -i, --input-file=INPUT-FILE
                       Specify file containing username and password pairs.
  -p, --prompt         Prompt for database password using standard input.
  -P, --prompt-for-key Prompt for encryption key using standard input.
  -m, --update-pass    Create encrypted password entry in the pool_passwd file.
  -u, --username       The username for the pool_password entry.
  -h, --help           Print this help.

"
    )
}

/// The pool_passwd file pgpool.conf `conf` uses.
fn pool_passwd_file(conf: &Path) -> Result<PathBuf, String> {
    let cfg = config::Config::load(conf)
        .map_err(|e| format!("{e}\nUnable to get configuration. Exiting...\n"))?;
    cfg.pool_passwd_path()
        .ok_or_else(|| "pool_passwd is disabled in pgpool.conf\n".to_string())
}

/// Replaces the entry of `user` in pool_passwd (or appends one).
pub fn write_entry(file: &Path, user: &str, secret: &str) -> Result<(), String> {
    let old = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("could not read \"{}\": {e}\n", file.display())),
    };
    let mut out = String::new();
    let mut done = false;
    for line in old.lines() {
        if line.split_once(':').map(|(u, _)| u) == Some(user) {
            if !done {
                out.push_str(&format!("{user}:{secret}\n"));
                done = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !done {
        out.push_str(&format!("{user}:{secret}\n"));
    }
    std::fs::write(file, out).map_err(|e| format!("could not write \"{}\": {e}\n", file.display()))
}

fn read_pairs(file: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("failed to open input_file \"{file}\" ({e})\n\n"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(_, p)| !p.is_empty())
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect())
}

fn default_user() -> String {
    crate::client::os_user().unwrap_or_default()
}

/// `pg_md5`; returns the exit code.
pub fn pg_md5(argv: Vec<OsString>) -> i32 {
    use lexopt::prelude::*;
    let (mut prompt, mut md5auth) = (false, false);
    let mut conf = DEFAULT_CONF.to_string();
    let mut user = String::new();
    let mut input: Option<String> = None;
    let mut args = Vec::new();
    let mut p = lexopt::Parser::from_args(argv);
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(_) => {
                eprint!("{PG_MD5_USAGE}");
                return 0;
            }
        };
        let val = |p: &mut lexopt::Parser| p.value().map(|v| v.to_string_lossy().into_owned());
        match arg {
            Short('p') | Long("prompt") => prompt = true,
            Short('m') | Long("md5auth") => md5auth = true,
            Short('f') | Long("config-file") => match val(&mut p) {
                Ok(v) => conf = v,
                Err(_) => {
                    eprint!("{PG_MD5_USAGE}");
                    return 0;
                }
            },
            Short('i') | Long("input-file") => match val(&mut p) {
                Ok(v) => input = Some(v),
                Err(_) => {
                    eprint!("{PG_MD5_USAGE}");
                    return 0;
                }
            },
            Short('u') | Long("username") => match val(&mut p) {
                Ok(v) if v.len() > MAX_INPUT => {
                    eprint!("Error: input exceeds maximum username length!\n\n");
                    return 1;
                }
                Ok(v) => user = v,
                Err(_) => {
                    eprint!("{PG_MD5_USAGE}");
                    return 0;
                }
            },
            Value(v) => args.push(v.to_string_lossy().into_owned()),
            _ => {
                eprint!("{PG_MD5_USAGE}");
                return 0;
            }
        }
    }
    let store = |user: &str, password: &str| -> Result<(), String> {
        let file = pool_passwd_file(Path::new(&conf))?;
        let user = if user.is_empty() {
            default_user()
        } else {
            user.to_string()
        };
        write_entry(&file, &user, &auth::pool_passwd_md5(password, &user))
    };
    let result = if let Some(file) = input {
        println!("trying to read username:password pairs from file {file}");
        read_pairs(&file).and_then(|pairs| {
            for (i, (u, pw)) in pairs.iter().enumerate() {
                println!("LINE#{:02}: USER: <{u}>", i + 1);
                if md5auth {
                    store(u, pw)?;
                } else {
                    println!("{}", auth::md5_hex(pw.as_bytes()));
                }
            }
            Ok(())
        })
    } else {
        let password = if prompt {
            let pw = crate::cli::prompt_password("password: ");
            pw.chars().take(MAX_INPUT).collect::<String>()
        } else {
            match args.first() {
                None => {
                    eprint!("{PG_MD5_USAGE}");
                    return 1;
                }
                Some(a) if a.len() > MAX_INPUT => {
                    eprint!("Error: Input exceeds maximum password length!\n\n{PG_MD5_USAGE}");
                    return 1;
                }
                Some(a) => a.clone(),
            }
        };
        if md5auth {
            store(&user, &password)
        } else {
            println!("{}", auth::md5_hex(password.as_bytes()));
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprint!("{e}");
            1
        }
    }
}

/// `pg_enc`; returns the exit code.
pub fn pg_enc(argv: Vec<OsString>) -> i32 {
    use lexopt::prelude::*;
    let (mut prompt, mut prompt_key, mut update) = (false, false, false);
    let mut conf = DEFAULT_CONF.to_string();
    let mut user = String::new();
    let mut key_file: Option<String> = None;
    let mut key: Option<String> = None;
    let mut input: Option<String> = None;
    let mut args = Vec::new();
    let mut p = lexopt::Parser::from_args(argv);
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(_) => {
                eprint!("{}", pg_enc_usage());
                return 1;
            }
        };
        let name = match arg {
            Short(c) => c.to_string(),
            Long(l) => l.to_string(),
            Value(v) => {
                args.push(v.to_string_lossy().into_owned());
                continue;
            }
        };
        let mut val = || p.value().map(|v| v.to_string_lossy().into_owned()).ok();
        match name.as_str() {
            "h" | "help" => {
                print!("{}", pg_enc_usage());
                return 0;
            }
            "p" | "prompt" => prompt = true,
            "P" | "prompt-for-key" => prompt_key = true,
            "m" | "update-pass" => update = true,
            "k" | "key-file" => key_file = val(),
            "K" | "enc-key" => key = val(),
            "f" | "config-file" => conf = val().unwrap_or(conf),
            "i" | "input-file" => input = val(),
            "u" | "username" => user = val().unwrap_or_default(),
            _ => {
                eprint!("{}", pg_enc_usage());
                return 1;
            }
        }
    }
    let key = if let Some(k) = key {
        k
    } else if prompt_key {
        crate::cli::prompt_password("key: ")
    } else {
        let file = key_file
            .map(PathBuf::from)
            .or_else(config::passwd::default_key_file);
        let Some(file) = file else {
            eprintln!("encryption key not provided");
            return 1;
        };
        println!("trying to read key from file {}", file.display());
        match config::passwd::read_key_file(&file) {
            Ok(k) => k,
            Err(_) => {
                eprintln!("encryption key not provided");
                return 1;
            }
        }
    };
    let store = |user: &str, password: &str| -> Result<(), String> {
        let file = pool_passwd_file(Path::new(&conf))?;
        let user = if user.is_empty() {
            default_user()
        } else {
            user.to_string()
        };
        write_entry(
            &file,
            &user,
            &config::passwd::encrypt_aes_secret(password, &key),
        )
    };
    let result = if let Some(file) = input {
        read_pairs(&file).and_then(|pairs| pairs.iter().try_for_each(|(u, pw)| store(u, pw)))
    } else {
        let password = if prompt {
            crate::cli::prompt_password("db password: ")
        } else if let Some(a) = args.first() {
            a.clone()
        } else {
            eprintln!("stdin is not tty");
            return 1;
        };
        if update {
            store(&user, &password)
        } else {
            let secret = config::passwd::encrypt_aes_secret(&password, &key);
            println!("\n{}", &secret[3..]);
            println!("pool_passwd string: {secret}");
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprint!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_replaced_or_appended() {
        let dir = std::env::temp_dir().join(format!("pcp-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pool_passwd");
        write_entry(&f, "alice", "md5a").unwrap();
        write_entry(&f, "bob", "md5b").unwrap();
        write_entry(&f, "alice", "md5c").unwrap();
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "alice:md5c\nbob:md5b\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn md5_entry_matches_pg_md5() {
        // Debian's `pg_md5 -m -u bob pw2` wrote bob:md570958700feced4967b0cec3c7b5a1347.
        assert_eq!(
            auth::pool_passwd_md5("pw2", "bob"),
            "md570958700feced4967b0cec3c7b5a1347"
        );
    }
}
