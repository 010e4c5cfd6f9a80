use std::io;

use underpass_shared::doctor::Status;

use super::*;

#[test]
fn a_port_in_use_says_an_edge_may_be_running() {
    let addr: SocketAddr = "127.0.0.1:7844".parse().unwrap();
    let c = bind_check(
        "tunnel listen udp",
        addr,
        Err(io::ErrorKind::AddrInUse.into()),
    );
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail.contains("in use (is an edge already running?)"),
        "{c:?}"
    );
    let c = bind_check(
        "clients listen",
        addr,
        Err(io::ErrorKind::PermissionDenied.into()),
    );
    assert!(c.todo.contains("1024"), "{c:?}");
    assert_eq!(bind_check("x", addr, Ok(())).status, Status::Pass);
}

#[test]
fn a_real_bind_of_a_taken_port_fails() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let c = bind_check(
        "clients listen",
        addr,
        std::net::TcpListener::bind(addr).map(drop),
    );
    assert_eq!(c.status, Status::Fail, "{c:?}");
}

#[test]
fn the_audit_folder_must_be_writable() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        audit_dir_check(&dir.path().join("audit.log")).status,
        Status::Pass
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the probe file is removed"
    );
    let c = audit_dir_check(Path::new("/nonexistent/dir/audit.log"));
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("/nonexistent/dir"), "{c:?}");
}
