/**
 * The catalog of data-connector types (postgresql … hubspot): their required config, the secrets they take
 * and how a connection test probes them. Data checked by a schema, not a switch spread over files.
 */
import * as Schema from "effect/Schema"

export const DataConnectorType = Schema.Literals([
  "postgresql",
  "mysql",
  "redshift",
  "snowflake",
  "databricks",
  "bigquery",
  "mongodb",
  "kafka",
  "confluent_kafka",
  "aws_s3",
  "gcs",
  "azure_blob",
  "sftp",
  "rest_api",
  "webhook",
  "amazon_kinesis",
  "salesforce",
  "hubspot"
])
export type DataConnectorType = typeof DataConnectorType.Type

/** How a connection test reaches the target. */
export const ProbeStrategy = Schema.Literals([
  "postgres",
  "mysql",
  "mongodb",
  "kafka",
  "tcp",
  "http",
  "s3",
  "gcs",
  "azure_blob",
  "ssh",
  "kinesis"
])
export type ProbeStrategy = typeof ProbeStrategy.Type

export const CatalogEntry = Schema.Struct({
  type: DataConnectorType,
  display_name: Schema.NonEmptyString,
  category: Schema.Literals(["database", "warehouse", "stream", "storage", "file", "api", "crm"]),
  /** Each entry is a set of alternatives; at least one of them must be present ("host or connectionString"). */
  required_config: Schema.Array(Schema.NonEmptyArray(Schema.NonEmptyString)),
  optional_config: Schema.Array(Schema.NonEmptyString),
  /** Config fields that must be numbers (ports). */
  numeric_config: Schema.Array(Schema.NonEmptyString),
  /** Credential fields the type takes; secrets go to credentials, never to config. */
  auth_fields: Schema.Array(Schema.NonEmptyString),
  probe: ProbeStrategy,
  default_port: Schema.optionalKey(Schema.Int)
})
export type CatalogEntry = typeof CatalogEntry.Type

const db = (
  type: DataConnectorType,
  display_name: string,
  probe: ProbeStrategy,
  default_port: number
): CatalogEntry => ({
  type,
  display_name,
  category: "database",
  required_config: [["host"], ["port"], ["database"]],
  optional_config: ["ssl", "schema"],
  numeric_config: ["port"],
  auth_fields: ["username", "password"],
  probe,
  default_port
})

/** The catalog itself. The Catalog test decodes it with `CatalogEntry`. */
export const entries: ReadonlyArray<CatalogEntry> = [
  db("postgresql", "PostgreSQL", "postgres", 5432),
  db("mysql", "MySQL", "mysql", 3306),
  { ...db("redshift", "Amazon Redshift", "postgres", 5439), category: "warehouse" },
  {
    type: "snowflake",
    display_name: "Snowflake",
    category: "warehouse",
    required_config: [["account"], ["warehouse"], ["database"]],
    optional_config: ["schema", "role"],
    numeric_config: [],
    auth_fields: ["username", "password", "private_key"],
    probe: "http"
  },
  {
    type: "databricks",
    display_name: "Databricks",
    category: "warehouse",
    required_config: [["host"], ["httpPath"]],
    optional_config: ["catalog", "schema"],
    numeric_config: [],
    auth_fields: ["token"],
    probe: "http"
  },
  {
    type: "bigquery",
    display_name: "BigQuery",
    category: "warehouse",
    required_config: [["project"], ["dataset"]],
    optional_config: ["location"],
    numeric_config: [],
    auth_fields: ["service_account_json"],
    probe: "http"
  },
  {
    type: "mongodb",
    display_name: "MongoDB",
    category: "database",
    required_config: [["host", "connectionString"]],
    optional_config: ["port", "database", "authSource", "tls"],
    numeric_config: ["port"],
    auth_fields: ["username", "password"],
    probe: "mongodb",
    default_port: 27017
  },
  {
    type: "kafka",
    display_name: "Apache Kafka",
    category: "stream",
    required_config: [["bootstrapServers"]],
    optional_config: ["topic", "saslMechanism", "ssl"],
    numeric_config: [],
    auth_fields: ["username", "password"],
    probe: "kafka",
    default_port: 9092
  },
  {
    type: "confluent_kafka",
    display_name: "Confluent Kafka",
    category: "stream",
    required_config: [["bootstrapServers"]],
    optional_config: ["topic", "schemaRegistryUrl"],
    numeric_config: [],
    auth_fields: ["api_key", "api_secret"],
    probe: "kafka",
    default_port: 9092
  },
  {
    type: "aws_s3",
    display_name: "Amazon S3",
    category: "storage",
    required_config: [["bucket"], ["region"]],
    optional_config: ["endpoint", "prefix", "forcePathStyle"],
    numeric_config: [],
    auth_fields: ["access_key_id", "secret_access_key", "session_token"],
    probe: "s3"
  },
  {
    type: "gcs",
    display_name: "Google Cloud Storage",
    category: "storage",
    required_config: [["bucket"], ["project"]],
    optional_config: ["endpoint", "prefix"],
    numeric_config: [],
    auth_fields: ["service_account_json"],
    probe: "gcs"
  },
  {
    type: "azure_blob",
    display_name: "Azure Blob Storage",
    category: "storage",
    required_config: [["container"], ["storageAccount"]],
    optional_config: ["endpoint", "prefix"],
    numeric_config: [],
    auth_fields: ["account_key", "sas_token"],
    probe: "azure_blob"
  },
  {
    type: "sftp",
    display_name: "SFTP",
    category: "file",
    required_config: [["host"], ["port"]],
    optional_config: ["path"],
    numeric_config: ["port"],
    auth_fields: ["username", "password", "private_key"],
    probe: "ssh",
    default_port: 22
  },
  {
    type: "rest_api",
    display_name: "REST API",
    category: "api",
    required_config: [["url"]],
    optional_config: ["method", "healthPath"],
    numeric_config: [],
    auth_fields: ["token", "api_key", "username", "password"],
    probe: "http"
  },
  {
    type: "webhook",
    display_name: "Webhook",
    category: "api",
    required_config: [["url"]],
    optional_config: ["method"],
    numeric_config: [],
    auth_fields: ["token", "secret"],
    probe: "http"
  },
  {
    type: "amazon_kinesis",
    display_name: "Amazon Kinesis",
    category: "stream",
    required_config: [["streamName"], ["region"]],
    optional_config: ["endpoint"],
    numeric_config: [],
    auth_fields: ["access_key_id", "secret_access_key", "session_token"],
    probe: "kinesis"
  },
  {
    type: "salesforce",
    display_name: "Salesforce",
    category: "crm",
    required_config: [["instanceUrl"]],
    optional_config: ["apiVersion"],
    numeric_config: [],
    auth_fields: ["token", "api_key"],
    probe: "http"
  },
  {
    type: "hubspot",
    display_name: "HubSpot",
    category: "crm",
    required_config: [],
    optional_config: ["instanceUrl"],
    numeric_config: [],
    auth_fields: ["token", "api_key"],
    probe: "http"
  }
]

const byType: ReadonlyMap<string, CatalogEntry> = new Map(entries.map((e) => [e.type, e]))

/** The catalog entry of a type. */
export const get = (type: DataConnectorType): CatalogEntry => byType.get(type) as CatalogEntry

export const isDataConnectorType = Schema.is(DataConnectorType)

/** A config value of a data connector (non-secret; secrets go to credentials). */
export const ConfigValue = Schema.Union([Schema.String, Schema.Finite, Schema.Boolean])
export const Config = Schema.Record(Schema.String, ConfigValue)
export type Config = typeof Config.Type

/** The issues of a config against its type: missing required fields, non-numeric ports. */
export const configIssues = (
  type: DataConnectorType,
  config: Config | undefined
): Array<{ readonly path: ReadonlyArray<string>; readonly issue: string }> => {
  const entry = get(type)
  const values = config ?? {}
  const present = (key: string) => {
    const v = values[key]
    return v !== undefined && v !== ""
  }
  const issues: Array<{ readonly path: ReadonlyArray<string>; readonly issue: string }> = []
  for (const alternatives of entry.required_config) {
    if (!alternatives.some(present)) {
      const [first] = alternatives
      issues.push({
        path: ["config", first],
        issue:
          alternatives.length === 1
            ? `${type} requires config field "${first}"`
            : `${type} requires one of config fields ${alternatives.map((a) => `"${a}"`).join(" or ")}`
      })
    }
  }
  for (const key of Object.keys(values)) {
    if (entry.auth_fields.includes(key)) {
      issues.push({
        path: ["config", key],
        issue: `"${key}" is a credential field: set it with a credential, not in config (config is not secret)`
      })
    }
  }
  for (const key of entry.numeric_config) {
    const v = values[key]
    if (v === undefined) continue
    const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/u.test(v) ? Number(v) : Number.NaN
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      issues.push({ path: ["config", key], issue: `"${key}" must be a port number from 1 to 65535` })
    }
  }
  return issues
}
