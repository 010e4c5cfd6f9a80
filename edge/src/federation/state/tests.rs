use super::*;

#[test]
fn session_notes_are_kept_per_session_and_bounded() {
    let notes = SessionNotes::<String>::default();
    assert_eq!(notes.get("a"), None);
    notes.set("a", "info".into());
    notes.set("a", "debug".into());
    assert_eq!(notes.get("a").as_deref(), Some("debug"));
    assert_eq!(notes.get("b"), None);
    for i in 0..NOTES_KEPT {
        notes.set(&format!("s{i}"), String::new());
    }
    assert_eq!(notes.get("a"), None, "the oldest is forgotten first");
    assert!(notes.get("s0").is_some() && notes.get(&format!("s{}", NOTES_KEPT - 1)).is_some());
    let held = notes.notes.lock().unwrap();
    assert_eq!((held.0.len(), held.1.len()), (NOTES_KEPT, NOTES_KEPT));
}
