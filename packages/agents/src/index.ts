/**
 * @switchboard/agents: Switchboard's tools as each agent framework's native tools. Import the framework's own
 * subpath (`/ai-sdk`, `/langchain`, `/openai-agents`, `/mastra`); this entry holds only what they share.
 */
export * as Agents from "./Agents.ts"
