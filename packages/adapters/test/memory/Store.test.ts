/** The in-memory stores against the shared behavioural suite. */
import * as Memory from "../../src/memory/index.ts"
import { storeSuite } from "../StoreSuite.ts"

storeSuite("memory stores", () => Memory.layer)
