use serde_json::{json, Value};
use underpass_mcp::jsonrpc::code;

use super::error::OpenapiError;
use super::request::{build, ArgError};
use super::result::tool_result;
use super::server::{call_answer, step, Step};
use super::spec::{catalog, parse_document, tool_name, Catalog, MAX_DOCUMENT_BYTES};
use super::tools::tool;
use super::*;
use crate::config::{OpenapiConfig, OperationFilter, SpecSource};
use std::time::Duration;

const PETSTORE_30_YAML: &str = r##"
openapi: 3.0.3
info:
  title: Pets
  version: "1"
paths:
  /pets:
    get:
      operationId: listPets
      summary: List pets
      tags: [pets]
      parameters:
        - name: limit
          in: query
          schema: {type: integer}
        - name: tag
          in: query
          schema: {type: array, items: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: array
                items: {$ref: "#/components/schemas/Pet"}
    post:
      operationId: create.pet
      tags: [pets, admin]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/NewPet"}
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Pet"}
  /pets/{petId}:
    parameters:
      - $ref: "#/components/parameters/PetId"
    get:
      operationId: getPet
      description: One pet.
      parameters:
        - name: X-Request-Tag
          in: header
          required: true
          schema: {type: string}
        - name: Authorization
          in: header
          schema: {type: string}
      responses:
        "200":
          $ref: "#/components/responses/OnePet"
    delete:
      operationId: deletePet
      responses:
        "204": {description: gone}
components:
  parameters:
    PetId:
      name: petId
      in: path
      required: true
      description: The pet's id
      schema: {type: string}
  responses:
    OnePet:
      description: a pet
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Pet"}
  schemas:
    NewPet:
      type: object
      required: [name]
      properties:
        name: {type: string}
        nickname: {type: string, nullable: true}
    Pet:
      allOf:
        - $ref: "#/components/schemas/NewPet"
      type: object
      properties:
        id: {type: integer}
"##;

const TODO_31_JSON: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "Todo", "version": "1"},
  "paths": {
    "/todos/{id}": {
      "put": {
        "operationId": "updateTodo",
        "summary": "Replace a todo",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
        "requestBody": {"content": {"application/merge-patch+json": {"schema": {"$ref": "#/$defs/Todo"}}}},
        "responses": {"2XX": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/$defs/Todo", "description": "the todo"}}}}}
      }
    }
  },
  "$defs": {"Todo": {"type": "object", "properties": {"title": {"type": ["string", "null"]}}}}
}"##;

fn load(text: &str) -> Result<Catalog, OpenapiError> {
    let doc = parse_document(text.as_bytes())?;
    catalog(
        &doc,
        &OperationFilter::default(),
        &OperationFilter::default(),
    )
}

fn filter(tags: &[&str], paths: &[&str], methods: &[&str]) -> OperationFilter {
    let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
    OperationFilter {
        tags: own(tags),
        paths: own(paths),
        methods: own(methods),
    }
}

fn names(c: &Catalog) -> Vec<&str> {
    c.operations.iter().map(|o| o.name.as_str()).collect()
}

#[test]
fn a_30_yaml_document_becomes_tools_with_refs_inlined() {
    let c = load(PETSTORE_30_YAML).unwrap();
    assert_eq!(c.title, "Pets");
    assert_eq!(
        names(&c),
        ["listPets", "create_pet", "getPet", "deletePet"],
        "document order, names sanitized"
    );
    let get = c.find("getPet").unwrap();
    assert_eq!(get.path, "/pets/{petId}");
    // The path item's parameter (a $ref) is there; `Authorization` is ignored (OpenAPI).
    let params: Vec<&str> = get.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(params, ["petId", "X-Request-Tag"]);
    let t = tool(get);
    assert_eq!(t["annotations"]["readOnlyHint"], true);
    assert_eq!(t["description"], "One pet.\n\nGET /pets/{petId}");
    assert_eq!(
        t["inputSchema"]["required"],
        json!(["petId", "X-Request-Tag"])
    );
    assert_eq!(t["inputSchema"]["additionalProperties"], false);
    // The response's $ref and the schema's allOf $ref are both inlined.
    let out = &t["outputSchema"];
    assert_eq!(out["allOf"][0]["properties"]["name"]["type"], "string");
    assert_eq!(out["properties"]["id"]["type"], "integer");
    assert!(!out.to_string().contains("$ref"));

    let post = tool(c.find("create_pet").unwrap());
    assert_eq!(post["annotations"]["readOnlyHint"], false);
    let body = &post["inputSchema"]["properties"]["body"];
    assert_eq!(body["required"], json!(["name"]));
    // 3.0's `nullable` as a JSON Schema type.
    assert_eq!(
        body["properties"]["nickname"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(post["inputSchema"]["required"], json!(["body"]));
    // An array response is no outputSchema (MCP's must be an object).
    assert!(tool(c.find("listPets").unwrap())
        .get("outputSchema")
        .is_none());
    assert_eq!(
        tool(c.find("deletePet").unwrap())["annotations"]["idempotentHint"],
        true
    );
}

#[test]
fn a_31_json_document_becomes_tools() {
    let c = load(TODO_31_JSON).unwrap();
    let op = c.find("updateTodo").unwrap();
    let body = op.body.as_ref().unwrap();
    assert_eq!(body.content_type, "application/merge-patch+json");
    assert!(!body.required);
    let t = tool(op);
    assert_eq!(t["title"], "Replace a todo");
    assert_eq!(t["inputSchema"]["properties"]["id"]["type"], "integer");
    assert_eq!(t["inputSchema"]["required"], json!(["id"]));
    let out = &t["outputSchema"];
    assert_eq!(
        out["properties"]["title"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(out["description"], "the todo", "a key beside $ref is kept");
}

#[test]
fn versions_and_syntax_are_checked() {
    let err = load("swagger: '2.0'\npaths: {}").unwrap_err();
    assert!(matches!(err, OpenapiError::Version(_)), "{err}");
    let err = load("openapi: 4.0.0\npaths: {}").unwrap_err();
    assert!(err.to_string().contains("4.0.0"), "{err}");
    let err = load("{\"openapi\": ").unwrap_err();
    assert!(matches!(err, OpenapiError::Syntax(_)), "{err}");
    let err = load("openapi: 3.1.0\npaths: {}").unwrap_err();
    assert!(matches!(err, OpenapiError::NoOperations), "{err}");
    let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert!(matches!(
        parse_document(&huge),
        Err(OpenapiError::TooLarge { .. })
    ));
}

fn one_op(schema: &str, extra: &str) -> String {
    format!(
        r##"{{"openapi": "3.1.0", "info": {{"title": "t", "version": "1"}},
        "paths": {{"/x": {{"post": {{"operationId": "x",
          "requestBody": {{"content": {{"application/json": {{"schema": {schema}}}}}}},
          "responses": {{}}}}}}}},
        "components": {{"schemas": {{{extra}}}}}}}"##
    )
}

#[test]
fn cyclic_refs_are_an_error_naming_the_chain() {
    let doc = one_op(
        r##"{"$ref": "#/components/schemas/A"}"##,
        r##""A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
            "B": {"type": "array", "items": {"$ref": "#/components/schemas/A"}}"##,
    );
    let err = load(&doc).unwrap_err();
    let OpenapiError::CyclicRef { chain, at } = &err else {
        panic!("{err}")
    };
    assert_eq!(at, "POST /x requestBody");
    assert_eq!(
        chain,
        "#/components/schemas/A → #/components/schemas/B → #/components/schemas/A"
    );
    // A ref to itself, and a parameter ref loop.
    let doc = one_op(
        r##"{"$ref": "#/components/schemas/S"}"##,
        r##""S": {"$ref": "#/components/schemas/S"}"##,
    );
    assert!(matches!(load(&doc), Err(OpenapiError::CyclicRef { .. })));
    let doc = r##"{"openapi": "3.0.0", "paths": {"/x": {"get": {"operationId": "x",
        "parameters": [{"$ref": "#/components/parameters/P"}]}}},
        "components": {"parameters": {"P": {"$ref": "#/components/parameters/P"}}}}"##;
    assert!(matches!(load(doc), Err(OpenapiError::CyclicRef { .. })));
}

#[test]
fn the_same_ref_twice_side_by_side_is_no_cycle() {
    let doc = one_op(
        r##"{"type": "object", "properties": {"a": {"$ref": "#/components/schemas/S"}, "b": {"$ref": "#/components/schemas/S"}}}"##,
        r##""S": {"type": "string"}"##,
    );
    let c = load(&doc).unwrap();
    let schema = &c.operations[0].body.as_ref().unwrap().schema;
    assert_eq!(schema["properties"]["b"]["type"], "string");
}

#[test]
fn unresolvable_and_external_refs_are_errors() {
    let doc = one_op(r##"{"$ref": "#/components/schemas/Nope"}"##, "");
    let err = load(&doc).unwrap_err();
    assert!(
        matches!(&err, OpenapiError::UnresolvableRef { reference, .. } if reference == "#/components/schemas/Nope"),
        "{err}"
    );
    let doc = one_op(r##"{"$ref": "other.yaml#/Pet"}"##, "");
    assert!(matches!(
        load(&doc),
        Err(OpenapiError::UnresolvableRef { .. })
    ));
}

#[test]
fn a_ref_explosion_is_bounded() {
    // Each level refers to the one below twice: 2^40 values once inlined.
    let mut schemas = vec![r##""L0": {"type": "string"}"##.to_owned()];
    for i in 1..=40 {
        schemas.push(format!(
            r##""L{i}": {{"type": "array", "prefixItems": [{{"$ref": "#/components/schemas/L{p}"}}, {{"$ref": "#/components/schemas/L{p}"}}]}}"##,
            p = i - 1
        ));
    }
    let doc = one_op(
        r##"{"$ref": "#/components/schemas/L40"}"##,
        &schemas.join(","),
    );
    assert!(matches!(
        load(&doc),
        Err(OpenapiError::SchemaTooLarge { .. })
    ));
}

#[test]
fn names_are_sanitized_cut_and_unique() {
    assert_eq!(tool_name("pets.list v2/ü"), "pets_list_v2__");
    assert_eq!(tool_name(&"a".repeat(100)).len(), 64);
    let doc = r##"{"openapi": "3.0.0", "paths": {
        "/a": {"get": {"operationId": "get.a"}},
        "/b": {"get": {"operationId": "get a"}}}}"##;
    let err = load(doc).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tool name \"get_a\" is made by both GET /a and GET /b (names are operationIds cut to [A-Za-z0-9_-], 64 characters)"
    );
    let doc = r##"{"openapi": "3.0.0", "paths": {"/a": {"get": {"summary": "no id"}}}}"##;
    assert_eq!(
        load(doc).unwrap_err().to_string(),
        "GET /a has no operationId: give it one, or leave it out with `exclude`"
    );
    let doc = r##"{"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": ""}}}}"##;
    assert!(matches!(load(doc), Err(OpenapiError::EmptyName(_))));
}

#[test]
fn include_and_exclude_select_by_tag_path_and_method() {
    let doc = parse_document(PETSTORE_30_YAML.as_bytes()).unwrap();
    let none = OperationFilter::default();
    let pick = |inc: &OperationFilter, exc: &OperationFilter| {
        catalog(&doc, inc, exc)
            .map(|c| names(&c).join(","))
            .unwrap_or_else(|e| e.to_string())
    };
    assert_eq!(
        pick(&filter(&["pets"], &[], &[]), &none),
        "listPets,create_pet"
    );
    assert_eq!(pick(&filter(&[], &[], &["GET"]), &none), "listPets,getPet");
    assert_eq!(
        pick(&filter(&[], &["/pets/*"], &[]), &none),
        "getPet,deletePet"
    );
    assert_eq!(
        pick(&none, &filter(&["admin"], &[], &["delete"])),
        "listPets,getPet"
    );
    assert_eq!(
        pick(&filter(&[], &["/pets"], &[]), &filter(&[], &[], &["post"])),
        "listPets"
    );
    assert!(pick(&filter(&["nothing"], &[], &[]), &none).contains("no operation is selected"));
    // An excluded operation is not checked: a way past one the connector cannot serve.
    let doc = parse_document(br##"{"openapi": "3.0.0", "paths": {"/a": {"get": {"summary": "no id"}}, "/b": {"get": {"operationId": "b"}}}}"##).unwrap();
    let c = catalog(&doc, &none, &filter(&[], &["/a"], &[])).unwrap();
    assert_eq!(names(&c), ["b"]);
}

#[test]
fn parameter_clashes_and_bad_shapes_are_errors() {
    let doc = r##"{"openapi": "3.0.0", "paths": {"/a/{id}": {"get": {"operationId": "a", "parameters": [
        {"name": "id", "in": "path", "required": true}, {"name": "id", "in": "query"}]}}}}"##;
    assert!(matches!(load(doc), Err(OpenapiError::ArgumentClash { .. })));
    let doc = r##"{"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": "a", "parameters": [
        {"name": "id", "in": "path", "required": true}]}}}}"##;
    assert!(load(doc)
        .unwrap_err()
        .to_string()
        .contains("not in the path"));
    let doc = r##"{"openapi": "3.0.0", "paths": {"/a/{id}": {"get": {"operationId": "a"}}}}"##;
    assert_eq!(
        load(doc).unwrap_err().to_string(),
        "invalid OpenAPI document at GET /a/{id}: the path's {id} has no path parameter"
    );
    let doc = r##"{"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": "a", "parameters": [
        {"name": "id", "in": "body"}]}}}}"##;
    assert!(matches!(load(doc), Err(OpenapiError::Invalid { .. })));
    let doc = r##"{"openapi": "3.0.0", "paths": {"/a": {"post": {"operationId": "a", "requestBody":
        {"required": true, "content": {"multipart/form-data": {}}}}}}}"##;
    assert!(load(doc)
        .unwrap_err()
        .to_string()
        .contains("no JSON media type"));
    let doc = r##"{"openapi": "3.0.0", "paths": []}"##;
    assert!(matches!(load(doc), Err(OpenapiError::Invalid { .. })));
}

#[test]
fn arguments_become_the_request() {
    let c = load(PETSTORE_30_YAML).unwrap();
    let get = c.find("getPet").unwrap();
    let call = build(
        get,
        "/api/v1/",
        Some("key=k"),
        Some(&json!({"petId": "a b/../c?d#e", "X-Request-Tag": "t1"})),
    )
    .unwrap();
    assert_eq!(call.method, "GET");
    assert_eq!(
        call.path_and_query,
        "/api/v1/pets/a%20b%2F..%2Fc%3Fd%23e?key=k"
    );
    assert_eq!(
        call.headers,
        [("X-Request-Tag".to_owned(), "t1".to_owned())]
    );
    assert_eq!(call.body, None);

    let list = c.find("listPets").unwrap();
    let call = build(
        list,
        "",
        None,
        Some(&json!({"limit": 5, "tag": ["a&b", "c"]})),
    )
    .unwrap();
    assert_eq!(call.path_and_query, "/pets?limit=5&tag=a%26b&tag=c");
    let call = build(list, "/", None, None).unwrap();
    assert_eq!(call.path_and_query, "/pets");

    let post = c.find("create_pet").unwrap();
    let call = build(post, "", None, Some(&json!({"body": {"name": "Rex"}}))).unwrap();
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.body,
        Some(("application/json".to_owned(), br#"{"name":"Rex"}"#.to_vec()))
    );
}

#[test]
fn bad_arguments_are_refused() {
    let c = load(PETSTORE_30_YAML).unwrap();
    let get = c.find("getPet").unwrap();
    let err = |args: Value| build(get, "", None, Some(&args)).unwrap_err();
    assert_eq!(
        err(json!({"X-Request-Tag": "t"})),
        ArgError::Missing("petId".into())
    );
    assert_eq!(
        err(json!({"petId": "1", "X-Request-Tag": "t", "extra": 1})),
        ArgError::Unknown("extra".into())
    );
    assert!(matches!(
        err(json!({"petId": "..", "X-Request-Tag": "t"})),
        ArgError::Shape { .. }
    ));
    assert!(matches!(
        err(json!({"petId": "1", "X-Request-Tag": "a\r\nX-Evil: 1"})),
        ArgError::Shape { .. }
    ));
    assert!(matches!(
        err(json!({"petId": {"a": 1}, "X-Request-Tag": "t"})),
        ArgError::Shape { .. }
    ));
    assert_eq!(
        build(get, "", None, Some(&json!([1]))).unwrap_err(),
        ArgError::NotObject
    );
    let post = c.find("create_pet").unwrap();
    assert_eq!(
        build(post, "", None, Some(&json!({}))).unwrap_err(),
        ArgError::Missing("body".into())
    );
}

#[test]
fn responses_become_tool_results() {
    let r = tool_result(200, Some("application/json; charset=utf-8"), br#"{"id":1}"#);
    assert_eq!(r["isError"], false);
    assert_eq!(r["structuredContent"], json!({"id": 1}));
    assert_eq!(r["content"][0]["text"], r#"{"id":1}"#);
    // JSON that is not an object: text only.
    let r = tool_result(200, Some("application/json"), b"[1,2]");
    assert!(r.get("structuredContent").is_none());
    assert_eq!(r["content"][0]["text"], "[1,2]");
    let r = tool_result(200, Some("text/plain"), b"hello");
    assert_eq!(r["content"][0]["text"], "hello");
    assert!(r.get("structuredContent").is_none());
    let r = tool_result(204, None, b"");
    assert_eq!(r["content"][0]["text"], "HTTP 204 (no content)");
    let r = tool_result(200, Some("image/png"), &[0xff, 0xfe, 0]);
    assert_eq!(r["content"][0]["text"], "(3 bytes of image/png, not text)");
    let r = tool_result(404, Some("application/json"), br#"{"error":"no pet"}"#);
    assert_eq!(r["isError"], true);
    assert_eq!(
        r["content"][0]["text"],
        r#"HTTP 404 Not Found: {"error":"no pet"}"#
    );
    assert!(r.get("structuredContent").is_none());
    let r = tool_result(503, None, b"");
    assert_eq!(r["content"][0]["text"], "HTTP 503 Service Unavailable");
}

fn rpc(c: &Catalog, version: Option<&str>, body: Value) -> Step {
    step(c, "pets", "POST", version, body.to_string().as_bytes())
}

#[test]
fn the_server_speaks_the_2025_11_25_era() {
    let c = load(PETSTORE_30_YAML).unwrap();
    let Step::Reply(200, init) = rpc(
        &c,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}),
    ) else {
        panic!()
    };
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "pets");
    assert!(init["result"]["capabilities"]["tools"].is_object());
    assert!(init["result"].get("resultType").is_none());
    let Step::Reply(200, init) = rpc(
        &c,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2099-01-01"}}),
    ) else {
        panic!()
    };
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(
        rpc(
            &c,
            Some("2025-11-25"),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        ),
        Step::Accepted
    );
    assert_eq!(
        rpc(&c, None, json!({"jsonrpc": "2.0", "id": 9, "result": {}})),
        Step::Accepted
    );
    let Step::Reply(200, list) = rpc(
        &c,
        Some("2025-11-25"),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ) else {
        panic!()
    };
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 4);
    assert!(list["result"].get("ttlMs").is_none());
    let call = rpc(
        &c,
        Some("2025-11-25"),
        json!({"jsonrpc": "2.0", "id": "c", "method": "tools/call", "params": {"name": "getPet", "arguments": {"petId": "1"}}}),
    );
    assert_eq!(
        call,
        Step::Call {
            id: json!("c"),
            name: "getPet".into(),
            arguments: Some(json!({"petId": "1"})),
            modern: false
        }
    );
    let Step::Reply(200, unknown) = rpc(
        &c,
        None,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "nope"}}),
    ) else {
        panic!()
    };
    assert_eq!(unknown["error"]["code"], code::INVALID_PARAMS);
    let Step::Reply(200, other) = rpc(
        &c,
        None,
        json!({"jsonrpc": "2.0", "id": 4, "method": "resources/list"}),
    ) else {
        panic!()
    };
    assert_eq!(other["error"]["code"], code::METHOD_NOT_FOUND);
    assert!(matches!(
        step(&c, "pets", "GET", None, b""),
        Step::Reply(405, _)
    ));
    assert!(matches!(
        step(&c, "pets", "POST", None, b"{"),
        Step::Reply(400, _)
    ));
    assert!(matches!(
        step(&c, "pets", "POST", None, b"[]"),
        Step::Reply(400, _)
    ));
}

#[test]
fn the_server_speaks_the_2026_07_28_era() {
    let c = load(PETSTORE_30_YAML).unwrap();
    let modern = Some("2026-07-28");
    let Step::Reply(200, discover) = rpc(
        &c,
        modern,
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
    ) else {
        panic!()
    };
    let result = &discover["result"];
    assert_eq!(result["supportedVersions"][0], "2026-07-28");
    assert!(result["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2025-11-25")));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "pets"
    );
    let Step::Reply(200, list) = rpc(
        &c,
        modern,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ) else {
        panic!()
    };
    assert_eq!(list["result"]["resultType"], "complete");
    assert_eq!(list["result"]["cacheScope"], "public");
    assert!(list["result"]["ttlMs"].is_u64());
    let Step::Call { id, modern, .. } = rpc(
        &c,
        modern,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "listPets"}}),
    ) else {
        panic!()
    };
    assert!(modern);
    let answer = call_answer(
        &id,
        tool_result(200, Some("application/json"), b"{}"),
        modern,
    );
    assert_eq!(answer["id"], 3);
    assert_eq!(answer["result"]["resultType"], "complete");
    assert_eq!(answer["result"]["structuredContent"], json!({}));
}

#[test]
fn credentials_become_sensitive_headers() {
    use crate::config::{AuthConfig, Secret, SecretSource};
    let bearer = AuthConfig::Bearer {
        token: SecretSource::Inline(Secret::new("t0ken".into())),
    };
    let h = auth_headers(Some(&bearer)).unwrap();
    assert_eq!(h[0].0, http::header::AUTHORIZATION);
    assert_eq!(h[0].1, "Bearer t0ken");
    assert!(h[0].1.is_sensitive());
    assert!(
        !format!("{bearer:?} {h:?}").contains("t0ken"),
        "never in Debug"
    );
    let basic = AuthConfig::Basic {
        username: "u".into(),
        password: SecretSource::Inline(Secret::new("p".into())),
    };
    assert_eq!(auth_headers(Some(&basic)).unwrap()[0].1, "Basic dTpw");
    let header = AuthConfig::Header {
        name: HeaderName::from_static("x-api-key"),
        value: SecretSource::Env("UNDERPASS_TEST_SURELY_UNSET_VAR".into()),
    };
    let err = auth_headers(Some(&header)).unwrap_err().to_string();
    assert!(
        err.contains("UNDERPASS_TEST_SURELY_UNSET_VAR is not set"),
        "{err}"
    );
    assert!(auth_headers(None).unwrap().is_empty());
}

// ----- The async shell against a local REST server ------------------------------------------

/// A REST server on a free loopback port: `/echo/{x}` answers what it received as JSON,
/// `/big` 17 MiB, `/slow` after 5 s, `/fail` a 500 with text.
async fn rest_server() -> std::net::SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    let header =
                        |n: &str| parts.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
                    let path = parts.uri.path().to_owned();
                    let (status, ct, out) = if path == "/big" {
                        (200, "text/plain", vec![b'x'; 17 * 1024 * 1024])
                    } else if path == "/slow" {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        (200, "text/plain", b"late".to_vec())
                    } else if path == "/doc" {
                        (200, "application/yaml", SHELL_DOC.as_bytes().to_vec())
                    } else if path == "/fail" {
                        (500, "text/plain", b"boom".to_vec())
                    } else {
                        let v = json!({
                            "method": parts.method.as_str(),
                            "uri": parts.uri.to_string(),
                            "authorization": header("authorization"),
                            "tag": header("x-tag"),
                            "trace": header("x-underpass-trace-id"),
                            "body": String::from_utf8_lossy(&body),
                        });
                        (200, "application/json", v.to_string().into_bytes())
                    };
                    let resp = http::Response::builder()
                        .status(status)
                        .header("content-type", ct)
                        .body(Full::new(Bytes::from(out)))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    addr
}

const SHELL_DOC: &str = r##"
openapi: 3.1.0
info: {title: Shell, version: "1"}
paths:
  /echo/{x}:
    post:
      operationId: echo
      parameters:
        - {name: x, in: path, required: true, schema: {type: string}}
        - {name: q, in: query, schema: {type: string}}
        - {name: X-Tag, in: header, schema: {type: string}}
      requestBody:
        content:
          application/json:
            schema: {type: object}
  /big: {get: {operationId: big}}
  /slow: {get: {operationId: slow}}
  /fail: {get: {operationId: fail}}
"##;

fn shell_config(dir: &std::path::Path, addr: std::net::SocketAddr) -> OpenapiConfig {
    use crate::config::{AuthConfig, Secret, SecretSource};
    let spec = dir.join("shell.yaml");
    std::fs::write(&spec, SHELL_DOC).unwrap();
    OpenapiConfig {
        spec: SpecSource::File(spec),
        base_url: format!("http://{addr}/").parse().unwrap(),
        include: OperationFilter::default(),
        exclude: OperationFilter::default(),
        auth: Some(AuthConfig::Bearer {
            token: SecretSource::Inline(Secret::new("s3cret".into())),
        }),
        timeout: Duration::from_secs(2),
    }
}

fn head(version: Option<&str>) -> RequestHead {
    RequestHead {
        service: "shell".into(),
        method: "POST".into(),
        query: String::new(),
        headers: version
            .map(|v| vec![("MCP-Protocol-Version".to_owned(), v.as_bytes().to_vec())])
            .unwrap_or_default(),
        principal: "client:alice".into(),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        request_id: "r1".into(),
        assertion: None,
    }
}

async fn exchange(backend: &OpenapiBackend, version: Option<&str>, msg: Value) -> (u16, Value) {
    let answer = backend
        .answer(&head(version), Bytes::from(msg.to_string()))
        .await;
    let status = answer.status;
    let body: Vec<Bytes> = answer.body.map(|c| c.unwrap()).collect().await;
    let body = body.concat();
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, value)
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

#[tokio::test]
async fn calls_reach_the_rest_api_with_the_credentials() {
    let addr = rest_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = shell_config(dir.path(), addr);
    assert_eq!(
        check(&config).unwrap(),
        format!("4 tools from {}", dir.path().join("shell.yaml").display())
    );
    let backend = OpenapiBackend::new("shell", &config, crate::http_client::http_client());

    let (status, list) = exchange(
        &backend,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 4);

    let args = json!({"x": "a/b", "q": "1 2", "X-Tag": "t", "body": {"k": [1]}});
    let (status, answer) = exchange(&backend, Some("2026-07-28"), call("echo", args)).await;
    assert_eq!(status, 200);
    let result = &answer["result"];
    assert_eq!(result["isError"], false, "{answer}");
    assert_eq!(result["resultType"], "complete");
    let seen = &result["structuredContent"];
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/echo/a%2Fb?q=1%202");
    assert_eq!(seen["authorization"], "Bearer s3cret");
    assert_eq!(seen["tag"], "t");
    assert_eq!(seen["trace"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(seen["body"], r#"{"k":[1]}"#);

    let (_, answer) = exchange(&backend, None, call("fail", json!({}))).await;
    assert_eq!(answer["result"]["isError"], true);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "HTTP 500 Internal Server Error: boom"
    );

    let (_, answer) = exchange(&backend, None, call("big", json!({}))).await;
    assert_eq!(answer["result"]["isError"], true);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "the REST API's response is over 16 MiB"
    );

    let (_, answer) = exchange(&backend, None, call("slow", json!({}))).await;
    assert_eq!(answer["result"]["isError"], true);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "the REST API did not answer within 2 s"
    );

    let (_, answer) = exchange(&backend, None, call("echo", json!({}))).await;
    assert_eq!(answer["result"]["isError"], true);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "invalid arguments for echo: missing required argument \"x\""
    );

    let (status, _) = exchange(
        &backend,
        None,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_document_that_does_not_load_is_an_error_answer_and_a_check_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = shell_config(dir.path(), "127.0.0.1:9".parse().unwrap());
    let spec = dir.path().join("bad.yaml");
    std::fs::write(
        &spec,
        "openapi: 3.0.0\npaths:\n  /a:\n    get: {summary: x}\n",
    )
    .unwrap();
    config.spec = SpecSource::File(spec);
    let err = check(&config).unwrap_err().to_string();
    assert_eq!(
        err,
        "GET /a has no operationId: give it one, or leave it out with `exclude`"
    );
    let backend = OpenapiBackend::new("shell", &config, crate::http_client::http_client());
    let (status, answer) = exchange(
        &backend,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(answer["error"]["code"], code::UPSTREAM_FAILED);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not load"));
}

#[tokio::test]
async fn a_document_at_a_url_is_fetched_at_first_use() {
    let addr = rest_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = shell_config(dir.path(), addr);
    config.spec = SpecSource::Url(format!("http://{addr}/doc").parse().unwrap());
    assert!(check(&config)
        .unwrap()
        .contains("fetched when the connector runs"));
    let backend = OpenapiBackend::new("shell", &config, crate::http_client::http_client());
    let (status, list) = exchange(
        &backend,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 4);
    // A URL that answers no OpenAPI document: an error answer.
    config.spec = SpecSource::Url(format!("http://{addr}/echo/doc").parse().unwrap());
    let backend = OpenapiBackend::new("shell", &config, crate::http_client::http_client());
    let (status, _) = exchange(
        &backend,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .await;
    assert_eq!(status, 502, "the echo answer is no OpenAPI document");
}

#[test]
fn yaml_keys_that_are_numbers_or_booleans_are_read_as_text() {
    // `200:` unquoted is how most YAML documents write response codes.
    let doc = "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      operationId: a\n      responses:\n        200:\n          description: ok\n          content:\n            application/json:\n              schema: {type: object, properties: {on: {type: boolean}, 1: {type: string}}}\n";
    let c = load(doc).unwrap();
    let out = c.operations[0].output_schema.as_ref().unwrap();
    assert_eq!(out["properties"]["1"]["type"], "string");
    assert_eq!(out["properties"]["on"]["type"], "boolean");
}

#[test]
fn a_yaml_alias_bomb_is_refused() {
    let mut doc = String::from("openapi: 3.0.0\na0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        doc.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    // Refused (the parser bounds alias expansion), not expanded until memory runs out.
    let err = parse_document(doc.as_bytes()).unwrap_err();
    assert!(matches!(err, OpenapiError::Syntax(_)), "{err}");
}
