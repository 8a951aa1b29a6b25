/**
 * The probes adapter: the `Probe` port (connection tests of every catalog type) and the protocol pieces it is
 * built from, exported for reuse and tests.
 */
export * as Aws from "./Aws.ts"
export * as Azure from "./Azure.ts"
export * as Google from "./Google.ts"
export * as Http from "./Http.ts"
export * as Kafka from "./Kafka.ts"
export * as Mongo from "./Mongo.ts"
export * as Mysql from "./Mysql.ts"
export * as Postgres from "./Postgres.ts"
export * as Probes from "./Probes.ts"
export * as Scram from "./Scram.ts"
export * as SigV4 from "./SigV4.ts"
export * as Ssh from "./Ssh.ts"
export * as Tcp from "./Tcp.ts"
