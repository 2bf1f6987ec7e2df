// Drives a real slmnode with the JavaScript clients agents are written with; prints one JSON object of what
// each saw. Usage: node openai_clients.mjs BASE_URL MODEL   (run by tests/integration/test_js_clients.py)
// Forced tool choice, so the grammar guarantees a call whatever the (tiny) model would say.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, jsonSchema, streamText, tool } from "ai";
import { ChatOpenAI } from "@langchain/openai";
import { complete, stream, Type } from "@mariozechner/pi-ai";

const [baseURL, model] = process.argv.slice(2);
const v1 = `${baseURL}/v1`;
const weatherSchema = {
  type: "object",
  properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
  required: ["city", "unit"],
  additionalProperties: false,
};
const question = "What is the weather in Paris? Use the tool.";
const out = { schema: weatherSchema };

// Vercel AI SDK (@ai-sdk/openai-compatible), as the agent framework's chat side uses it.
const provider = createOpenAICompatible({ name: "slmnode", baseURL: v1, apiKey: "not-needed" });
const aiTools = { get_weather: tool({ description: "Weather forecast for a city", inputSchema: jsonSchema(weatherSchema) }) };
const gen = await generateText({
  model: provider(model), prompt: question, tools: aiTools, toolChoice: { type: "tool", toolName: "get_weather" },
  temperature: 0, maxOutputTokens: 64,
});
out.aiGenerate = { toolCalls: gen.toolCalls.map((c) => ({ name: c.toolName, input: c.input })), finish: gen.finishReason };
const st = streamText({
  model: provider(model), prompt: question, tools: aiTools, toolChoice: "required", temperature: 0, maxOutputTokens: 64,
});
const parts = [];
for await (const part of st.fullStream) parts.push(part.type);
out.aiStream = { parts, toolCalls: (await st.toolCalls).map((c) => ({ name: c.toolName, input: c.input })) };
const text = await generateText({ model: provider(model), prompt: "Say hello.", temperature: 0, maxOutputTokens: 8 });
out.aiText = { text: text.text, outputTokens: text.usage.outputTokens };

// LangChain JS (bindTools), as ReAct agents use it.
const lc = new ChatOpenAI({ model, apiKey: "not-needed", configuration: { baseURL: v1 }, temperature: 0, maxTokens: 64 });
const bound = lc.bindTools([{ type: "function", function: { name: "get_weather", description: "Weather forecast for a city",
  parameters: weatherSchema } }], { tool_choice: { type: "function", function: { name: "get_weather" } } });
const msg = await bound.invoke(question);
out.lcInvoke = msg.tool_calls.map((c) => ({ name: c.name, input: c.args }));
let gathered;
for await (const chunk of await bound.stream(question)) gathered = gathered === undefined ? chunk : gathered.concat(chunk);
out.lcStream = gathered.tool_calls.map((c) => ({ name: c.name, input: c.args }));

// pi-ai (the coding agent's client): always streams with include_usage, tools, tool_choice, max_completion_tokens.
const piModel = { id: model, name: model, api: "openai-completions", provider: "slmnode", baseUrl: v1, reasoning: false,
  input: ["text"], cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }, contextWindow: 2048, maxTokens: 64 };
const context = {
  systemPrompt: "You are a helpful assistant.",
  messages: [{ role: "user", content: question }],
  tools: [{ name: "get_weather", description: "Weather forecast for a city",
    parameters: Type.Object({ city: Type.String(), unit: Type.Union([Type.Literal("celsius"), Type.Literal("fahrenheit")]) }) }],
};
const events = [];
const s = stream(piModel, context, { apiKey: "not-needed", toolChoice: "required", maxTokens: 64, temperature: 0 });
for await (const ev of s) events.push(ev.type);
const final = await s.result();
out.pi = { events, stopReason: final.stopReason, errorMessage: final.errorMessage ?? null,
  toolCalls: final.content.filter((b) => b.type === "toolCall").map((b) => ({ name: b.name, input: b.arguments })),
  usage: { input: final.usage.input, output: final.usage.output } };
const plain = await complete(piModel, { messages: [{ role: "user", content: "Say hello." }] },
  { apiKey: "not-needed", maxTokens: 8, temperature: 0 });
out.piText = { stopReason: plain.stopReason, errorMessage: plain.errorMessage ?? null,
  text: plain.content.filter((b) => b.type === "text").map((b) => b.text).join("") };
console.log(JSON.stringify(out));
