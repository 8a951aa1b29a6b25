/**
 * A throwaway PostgreSQL cluster on a loopback port, for tests of the PostgreSQL probe against a real server.
 */
export * as Cluster from "./Cluster.ts"
