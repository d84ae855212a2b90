-- load.lua - wrk posts LoadAsset envelopes, each with a distinct
-- DestinationAsset, so every request is a new task apubid must commit to
-- its store before it answers.
--
-- Environment: BENCH_PREFIX and BENCH_SUFFIX are files holding the
-- envelope before and after the varying part of the destination name;
-- BENCH_RUN tells runs apart (names stay distinct across repetitions);
-- BENCH_LUA is the directory of these scripts. A name is
-- <run>_<thread>_<counter>: setup() numbers the threads, each thread counts
-- its own requests.
local function slurp(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end

local prefix = slurp(os.getenv("BENCH_PREFIX"))
local suffix = slurp(os.getenv("BENCH_SUFFIX"))
local run = os.getenv("BENCH_RUN") or "r"
local headers = {
	["Content-Type"] = "text/xml; charset=utf-8",
	["SOAPAction"] = '""',
}
local threads = 0
local counter = 0

function setup(thread)
	threads = threads + 1
	thread:set("tag", threads)
end

function request()
	counter = counter + 1
	return wrk.format("POST", nil, headers,
		prefix .. run .. "_" .. tostring(tag) .. "_" .. counter .. suffix)
end

dofile(os.getenv("BENCH_LUA") .. "/report.lua")
