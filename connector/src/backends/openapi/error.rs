//! Why an OpenAPI document cannot be served: each message names what to fix.

/// A document that does not load, or does not make a usable set of tools.
#[derive(Debug, thiserror::Error)]
pub enum OpenapiError {
    #[error("cannot read the OpenAPI document {0}: {1}")]
    Read(String, String),
    #[error("the OpenAPI document is over {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the OpenAPI document is neither JSON nor YAML: {0}")]
    Syntax(String),
    #[error("not an OpenAPI 3.0 or 3.1 document: {0}")]
    Version(String),
    #[error("invalid OpenAPI document at {at}: {what}")]
    Invalid { at: String, what: String },
    #[error("unresolvable $ref {reference:?} at {at} (only refs inside the document, `#/…`, are followed)")]
    UnresolvableRef { reference: String, at: String },
    #[error("cyclic $ref at {at}: {chain} (recursive schemas cannot become a tool's schema)")]
    CyclicRef { at: String, chain: String },
    #[error(
        "the schemas of {at} expand to more than {limit} values once their $refs are resolved"
    )]
    SchemaTooLarge { at: String, limit: usize },
    #[error("{0} has no operationId: give it one, or leave it out with `exclude`")]
    NoOperationId(String),
    #[error("{0}: its operationId makes an empty tool name")]
    EmptyName(String),
    #[error("tool name {name:?} is made by both {first} and {second} (names are operationIds cut to [A-Za-z0-9_-], 64 characters)")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    #[error("{op}: parameters {name:?} in {a} and in {b} would be one tool argument")]
    ArgumentClash {
        op: String,
        name: String,
        a: String,
        b: String,
    },
    #[error("more than {limit} operations are selected: narrow them with `include` or `exclude`")]
    TooManyOperations { limit: usize },
    #[error("no operation is selected (the document has none, or `include`/`exclude` left none)")]
    NoOperations,
}
