-- status.lua - wrk posts one fixed SOAP envelope (a GetTaskStatus of a
-- real TaskId) on every request, to apubid and to the nginx reference alike.
--
-- Environment: BENCH_BODY is the file holding the envelope, BENCH_LUA the
-- directory of these scripts. The request is static (no request() hook), so
-- wrk builds it once and the client costs as little as it can.
local function slurp(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end

wrk.method = "POST"
wrk.body = slurp(os.getenv("BENCH_BODY"))
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.headers["SOAPAction"] = '""'

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
