// Validates an AsyncAPI 3.0 document against the official AsyncAPI JSON schema (npm
// @asyncapi/specs), offline. Beyond the JSON schema, which treats `$ref` values as opaque data:
// every local `$ref` (`#/...`) must point at something in the document, and every Avro payload
// `$ref` must name an existing file that is a valid Avro schema (the spec's own Avro definition).
//
// Usage: node validate.cjs <asyncapi.yaml>   (exit 0: valid; 1: invalid, with the reasons)
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');
const YAML = require('yaml');

const AVRO_FORMATS = new Set([
  'application/vnd.apache.avro;version=1.9.0',
  'application/vnd.apache.avro+json;version=1.9.0',
]);

function fail(problems) {
  for (const problem of problems) console.error(`  - ${problem}`);
  process.exit(1);
}

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.cjs <asyncapi.yaml>');
  process.exit(2);
}
const text = fs.readFileSync(file, 'utf8');
const parsed = YAML.parseDocument(text, { uniqueKeys: true });
if (parsed.errors.length > 0) {
  console.error(`${file} is not valid YAML:`);
  fail(parsed.errors.map((error) => error.message));
}
const doc = parsed.toJS();

const version = doc && doc.asyncapi;
if (version !== '3.0.0') {
  console.error(`${file}: expected "asyncapi: 3.0.0", found ${JSON.stringify(version)}`);
  process.exit(1);
}
// The variant without `$id`s, as @asyncapi/parser uses it: the bundled one redefines the
// draft-07 meta-schema, which Ajv already knows.
const specSchema = require(`@asyncapi/specs/schemas/${version}-without-$id.json`);
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: true });
addFormats(ajv);
const SPEC = 'asyncapi-spec';
ajv.addSchema(specSchema, SPEC);
const validate = ajv.getSchema(SPEC);
// The spec's own definition of an Avro schema, for the files payloads refer to.
const avroSchema = ajv.getSchema(`${SPEC}#/definitions/avroSchema_v1`);

const problems = [];
if (!validate(doc)) {
  for (const error of validate.errors) {
    problems.push(`${error.instancePath || '/'}: ${error.message} ${JSON.stringify(error.params)}`);
  }
}

// Local references and Avro payload files.
function pointer(root, ref) {
  return ref
    .slice(2)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((node, key) => (node !== undefined && node !== null ? node[key] : undefined), root);
}
if (!avroSchema) problems.push('the AsyncAPI specs package has no avroSchema_v1 definition');
const base = path.dirname(path.resolve(file));

function walk(node, where) {
  if (Array.isArray(node)) {
    node.forEach((item, index) => walk(item, `${where}/${index}`));
    return;
  }
  if (node === null || typeof node !== 'object') return;
  if (typeof node.$ref === 'string' && node.$ref.startsWith('#/')) {
    if (pointer(doc, node.$ref) === undefined) {
      problems.push(`${where}: $ref ${node.$ref} points at nothing`);
    }
  }
  if (AVRO_FORMATS.has(node.schemaFormat) && node.schema && typeof node.schema.$ref === 'string') {
    const target = path.resolve(base, node.schema.$ref);
    let avro;
    try {
      avro = JSON.parse(fs.readFileSync(target, 'utf8'));
    } catch (error) {
      problems.push(`${where}/schema: $ref ${node.schema.$ref}: ${error.message}`);
    }
    if (avro !== undefined && avroSchema && !avroSchema(avro)) {
      const reasons = avroSchema.errors.map((e) => `${e.instancePath || '/'} ${e.message}`);
      problems.push(`${where}/schema: ${node.schema.$ref} is not a valid Avro schema: ${reasons.slice(0, 3).join('; ')}`);
    }
  }
  for (const [key, value] of Object.entries(node)) walk(value, `${where}/${key}`);
}
walk(doc, '');

if (problems.length > 0) {
  console.error(`${file} is not a valid AsyncAPI ${version} document:`);
  fail(problems);
}
const count = (object) => Object.keys(object || {}).length;
console.log(
  `${file}: valid AsyncAPI ${version} (${count(doc.channels)} channels, ${count(doc.operations)} operations, ` +
    `${count(doc.components && doc.components.messages)} messages)`,
);
