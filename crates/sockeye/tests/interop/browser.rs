//! The browser as a peer of the script-driven tests: Chromium, driven by Node.js with
//! playwright-core through `interop/node/browser_client.cjs`, and the check of what a
//! page's close event says. Shared by the library's browser tests
//! (`tests/interop_browser.rs`) and the CLI's (`sockeye serve` with a browser).

#![allow(
    dead_code,
    reason = "shared by several test crates, each of which uses a part"
)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::json::Json;
use crate::scripts::{Peer, check_peer};

/// Chromium, driven by Node.js with playwright-core, as a peer of the tests. Fails the
/// test, saying how to install them, if they are missing.
pub(crate) fn browser() -> &'static Peer {
    static BROWSER: OnceLock<Result<Peer, String>> = OnceLock::new();
    let found = BROWSER.get_or_init(|| {
        let program = std::env::var_os("SOCKEYE_INTEROP_NODE")
            .map_or_else(|| PathBuf::from("node"), PathBuf::from);
        let modules = workspace().join("target/interop-node/node_modules");
        let chromium = std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into());
        check_peer(Path::new(&chromium), &["--version"], &[])?;
        let env = vec![
            ("NODE_PATH", OsString::from(modules)),
            ("CHROMIUM", chromium),
        ];
        check_peer(&program, &["-e", "require('playwright-core')"], &env)?;
        Ok(Peer {
            program,
            dir: workspace().join("crates/sockeye/tests/interop/node"),
            server: None,
            client: "browser_client.cjs",
            env,
        })
    });
    match found {
        Ok(peer) => peer,
        Err(why) => panic!(
            "the browser interop tests need Chromium, and node with the `playwright-core` \
             package: {why}.\nRun `bash scripts/test-deps.sh` from the workspace root to \
             install them, or set CHROMIUM to a Chromium binary."
        ),
    }
}

/// Checks the page's "closed" event: the close event's code, reason and `wasClean`, and
/// whether the page closed first.
pub(crate) fn assert_page_close(
    closed: &Json,
    code: u16,
    reason: &str,
    clean: bool,
    initiated: bool,
) {
    assert_eq!(
        closed.get("code").as_u64(),
        Some(u64::from(code)),
        "{closed}"
    );
    assert_eq!(closed.get("reason").as_str(), Some(reason), "{closed}");
    assert_eq!(closed.get("was_clean").as_bool(), Some(clean), "{closed}");
    assert_eq!(
        closed.get("initiated").as_bool(),
        Some(initiated),
        "{closed}"
    );
}

/// The workspace's root, from the crate whose tests include this module (each crate is
/// two directories below it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
